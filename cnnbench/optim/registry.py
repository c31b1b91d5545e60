"""The optimizers registry: torch.optim classes (and ours) with the defaults a benchmark uses.

Each entry is one decorated function returning an `OptimizerDef`; `create_optimizer` merges the
entry's defaults < the caller's keywords, checks them against the class's signature and against
the valid range of each known hyper-parameter, and builds it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from cnnbench.errors import CnnbenchError
from cnnbench.imports import accepted_kwargs, is_import_path, load_object
from cnnbench.registry import Registry

# How weight_decay λ enters the update: "coupled" adds λθ to the gradient (L2 regularisation, so
# adaptive methods rescale it too); "decoupled" shrinks θ by lr·λ·θ beside the update (AdamW).
DecayKind = Literal["coupled", "decoupled", "none"]


@dataclass(frozen=True)
class OptimizerDef:
    """An optimizer class with the defaults this registry gives it."""

    cls: type[torch.optim.Optimizer]
    defaults: dict[str, Any] = field(default_factory=dict)  # lr included
    description: str = ""
    source: str = "torch.optim"
    weight_decay: DecayKind = "coupled"


OPTIMIZERS: Registry[Callable[[], OptimizerDef]] = Registry("optimizer")

# Arguments that choose an implementation, not the update rule: never shown as defaults.
_IMPLEMENTATION_ARGS = {"foreach", "maximize", "capturable", "differentiable", "fused"}


def optimizer_def(name: str) -> OptimizerDef:
    """The definition of a registered optimizer, or of a user's `module:Class`."""
    if is_import_path(name):
        cls = load_object(name, "optimizer")
        if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
            raise CnnbenchError(f"optimizer {name!r} is not a torch.optim.Optimizer subclass")
        return OptimizerDef(cls, {}, f"user optimizer {cls.__name__}", name)
    return OPTIMIZERS.get(name)()


def effective_defaults(name: str) -> dict[str, Any]:
    """Every hyper-parameter a run of `name` uses unless the suite sets it: the class's signature
    defaults overridden by the registry's, implementation switches left out."""
    definition = optimizer_def(name)
    signature = inspect.signature(definition.cls.__init__).parameters.values()
    defaults = {p.name: p.default for p in signature
                if p.default is not p.empty and p.name not in _IMPLEMENTATION_ARGS}
    return {**defaults, **definition.defaults}


def needs_closure(name: str) -> bool:
    """Whether the optimizer's `step` must be given a closure (L-BFGS re-evaluates the loss)."""
    closure = inspect.signature(optimizer_def(name).cls.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


# ─── Value checks: what torch would reject only when a run starts, or never ────────────────────


@dataclass(frozen=True)
class _Range:
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        high = "∞" if self.high == math.inf else f"{self.high:g}"
        return (f"{'(' if self.low_open else '['}{self.low:g}, {high}"
                f"{')' if self.high_open or self.high == math.inf else ']'}")


_UNIT = _Range(0, 1)
_BETA = _Range(0, 1, high_open=True)  # β = 1 never forgets, the average is never updated
_NON_NEGATIVE = _Range(0)
_RANGES: dict[str, _Range] = {
    "lr": _Range(0, low_open=True),
    "weight_decay": _NON_NEGATIVE,
    "momentum": _BETA,
    "dampening": _UNIT,
    "nu": _UNIT,
    "alpha": _UNIT,  # RMSprop's smoothing constant
    "rho": _UNIT,  # Adadelta's smoothing constant
    "eps": _NON_NEGATIVE,
    "lr_decay": _NON_NEGATIVE,
    "momentum_decay": _NON_NEGATIVE,
    "initial_accumulator_value": _NON_NEGATIVE,
}
_SEQUENCE_RANGES: dict[str, _Range] = {"betas": _BETA, "nus": _UNIT}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_values(name: str, hparams: dict[str, Any]) -> None:
    """Raise a CnnbenchError naming key, value and valid range for any value out of range."""
    for key, value in hparams.items():
        if key in _RANGES:
            valid = _RANGES[key]
            if not (_is_number(value) and value in valid):
                raise CnnbenchError(
                    f"optimizer {name!r}: {key}={value!r} is invalid; {key} must be a number "
                    f"in {valid}")
        elif key in _SEQUENCE_RANGES:
            valid = _SEQUENCE_RANGES[key]
            if not (isinstance(value, (list, tuple)) and value
                    and all(_is_number(v) and v in valid for v in value)):
                raise CnnbenchError(
                    f"optimizer {name!r}: {key}={value!r} is invalid; {key} must be a list of "
                    f"numbers, each in {valid}")


def resolve_hparams(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Defaults < overrides, checked against the optimizer's signature and the valid ranges (and
    tried on a dummy parameter, so that whatever else the class rejects fails before any run);
    lr always present."""
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
    check_values(name, hparams)
    _try(name, definition.cls, hparams)
    return hparams


# torch's Optimizer.__init__ says this after the subclass has checked its hyper-parameters
_NO_PARAMS = "optimizer got an empty parameter list"


def _try(name: str, cls: type[torch.optim.Optimizer], hparams: dict[str, Any]) -> None:
    """Let the class check `hparams`. torch's and cnnbench's own classes check them before
    `Optimizer.__init__`, so an empty parameter list is enough, and it spares `validate` the
    torch._dynamo import that adding a param group triggers (1.4 s); user classes get a dummy
    parameter."""
    if not cls.__module__.startswith(("torch.optim", "cnnbench.optim")):
        _build(name, cls, [torch.zeros(1, requires_grad=True)], hparams)
        return
    try:
        cls([], **hparams)
    except ValueError as exc:
        if str(exc) != _NO_PARAMS:
            raise CnnbenchError(f"optimizer {name!r} rejected {hparams}: {exc}") from None
    except TypeError as exc:
        raise CnnbenchError(f"optimizer {name!r} rejected {hparams}: {exc}") from None


def _build(name: str, cls: type[torch.optim.Optimizer], params: Iterable[torch.Tensor],
           hparams: dict[str, Any]) -> torch.optim.Optimizer:
    try:
        return cls(params, **hparams)
    except (ValueError, TypeError) as exc:
        raise CnnbenchError(f"optimizer {name!r} rejected {hparams}: {exc}") from None


def create_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float | None = None, **kwargs
) -> torch.optim.Optimizer:
    """Build a registered optimizer over `params`; the registry's defaults fill the rest."""
    overrides = {k: v for k, v in {"lr": lr, **kwargs}.items() if v is not None}
    hparams = resolve_hparams(name, overrides)
    return _build(name, optimizer_def(name).cls, params, hparams)
