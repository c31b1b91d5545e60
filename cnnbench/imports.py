"""Load user objects named as `module.path:attribute` in a suite."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

from cnnbench.errors import CnnbenchError


def is_import_path(name: str) -> bool:
    return ":" in name


def load_object(path: str, what: str) -> Any:
    """Import `module.path:attribute`; any failure becomes one clear CnnbenchError."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise CnnbenchError(f"{what} {path!r}: write it as 'module.path:name'")
    _ensure_cwd_on_path()
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # user code: any exception is theirs to see, as one line
        raise CnnbenchError(
            f"{what} {path!r}: cannot import module {module_name!r}: "
            f"{type(exc).__name__}: {exc} (is it on PYTHONPATH / installed?)"
        ) from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise CnnbenchError(
            f"{what} {path!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) "
            f"has no attribute {attr!r}"
        ) from None
    return obj


def _ensure_cwd_on_path() -> None:
    """Let `mymodels:Net` name a module in the working directory, as `python -m cnnbench` does.

    A console script puts its own folder, not the working directory, first on sys.path.
    """
    cwd = os.getcwd()
    if not any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
        sys.path.insert(0, cwd)


def accepted_kwargs(fn: Callable) -> tuple[set[str], bool]:
    """The keyword names `fn` takes, and whether it takes **kwargs."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names - {"self"}, any(p.kind is p.VAR_KEYWORD for p in params)
