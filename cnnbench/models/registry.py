"""The models registry: one decorated builder per model, plus user models as `module:callable`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from cnnbench.errors import CnnbenchError
from cnnbench.imports import accepted_kwargs, is_import_path, load_object
from cnnbench.registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    """What `cnnbench list models` shows about a registered model."""

    family: str
    year: int
    description: str
    native_input: tuple[int, int, int]  # (channels, height, width) of the published model
    native_classes: int = 10
    small_input: str = "native"  # what the model does with inputs smaller than native


MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
MODEL_INFO: dict[str, ModelInfo] = {}


def register_model(**info):
    """Decorator: `@register_model(family=..., year=...)` over `def name(*, in_channels, ...)`."""

    def add(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS.register(fn)
        MODEL_INFO[fn.__name__] = ModelInfo(**info)
        return fn

    return add


def create_model(
    name: str, *, in_channels: int = 3, num_classes: int = 10, image_size: int = 32, **kwargs
) -> nn.Module:
    """Build a registered model (or a user's `module:callable`) for the given input and classes.

    Options left as None are dropped, so the model's own defaults apply.
    """
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    shape = {"in_channels": in_channels, "num_classes": num_classes, "image_size": image_size}
    if is_import_path(name):
        factory = load_object(name, "model")
        if not callable(factory):
            raise CnnbenchError(f"model {name!r} is not callable")
        names, takes_any = accepted_kwargs(factory)
        shape = {k: v for k, v in shape.items() if takes_any or k in names}
        try:
            model = factory(**shape, **kwargs)
        except Exception as exc:  # user code: report it, do not crash
            raise CnnbenchError(
                f"model {name!r} ({_source_file(factory)}) failed to build with "
                f"{kwargs or 'no options'} for {shape}: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(model, nn.Module):
            raise CnnbenchError(f"model {name!r} returned {type(model).__name__}, not an nn.Module")
        return model
    factory = MODELS.get(name)
    names, _ = accepted_kwargs(factory)
    unknown = sorted(set(kwargs) - names)
    if unknown:
        valid = sorted(names - set(shape))
        raise CnnbenchError(
            f"model {name!r} takes no option {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    return factory(**shape, **kwargs)


def _source_file(obj: object) -> str:
    try:
        return inspect.getsourcefile(obj) or "?"  # type: ignore[arg-type]
    except TypeError:
        return "?"


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
