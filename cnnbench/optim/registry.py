"""The optimizers registry: torch.optim classes with the defaults a benchmark should use.

Each entry is one decorated function returning an `OptimizerDef`; `create_optimizer` merges the
entry's defaults < the caller's keywords, checks them against the class's signature, and builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from cnnbench.errors import CnnbenchError
from cnnbench.imports import accepted_kwargs, is_import_path, load_object
from cnnbench.registry import Registry


@dataclass(frozen=True)
class OptimizerDef:
    """An optimizer class with the defaults this registry gives it."""

    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any] = field(default_factory=dict)  # lr included
    description: str = ""
    source: str = "torch.optim"


OPTIMIZERS: Registry[Callable[[], OptimizerDef]] = Registry("optimizer")


def optimizer_def(name: str) -> OptimizerDef:
    """The definition of a registered optimizer, or of a user's `module:Class`."""
    if is_import_path(name):
        cls = load_object(name, "optimizer")
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise CnnbenchError(f"optimizer {name!r} is not a torch.optim.Optimizer subclass")
        return OptimizerDef(cls, {}, f"user optimizer {cls.__name__}", name)
    return OPTIMIZERS.get(name)()


def resolve_hparams(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults < overrides, checked against the optimizer's signature; lr always present."""
    definition = optimizer_def(name)
    accepted, takes_any = accepted_kwargs(definition.cls.__init__)
    accepted.discard("params")
    hparams = {**definition.defaults, **(overrides or {})}
    unknown = sorted(k for k in hparams if k not in accepted) if not takes_any else []
    if unknown:
        raise CnnbenchError(
            f"optimizer {name!r} ({definition.cls.__name__}) takes no "
            f"{', '.join(map(repr, unknown))}; valid: {', '.join(sorted(accepted))}"
        )
    if "lr" not in hparams:
        raise CnnbenchError(f"optimizer {name!r} needs an lr (give it in the suite's lr grid)")
    if not hparams["lr"] > 0:
        raise CnnbenchError(f"optimizer {name!r}: lr must be positive, got {hparams['lr']!r}")
    return hparams


def create_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float | None = None, **kwargs
) -> torch.optim.Optimizer:
    """Build a registered optimizer over `params`; the registry's defaults fill what is not given."""
    overrides = {k: v for k, v in {"lr": lr, **kwargs}.items() if v is not None}
    hparams = resolve_hparams(name, overrides)
    cls = optimizer_def(name).cls
    try:
        return cls(params, **hparams)
    except (ValueError, TypeError) as exc:
        raise CnnbenchError(f"optimizer {name!r} rejected {hparams}: {exc}") from None
