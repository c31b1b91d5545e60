"""Results where people already look: MLflow (`mlflow`) and TensorBoard (`tensorboard`), both fed
from the same per-run records (`records`). Each tracker is an optional extra; `require` turns
its absence into a one-line install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from cnnbench.errors import CnnbenchError


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import `module`, or fail with "WHAT needs MODULE: pip install 'cnnbench[EXTRA]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise CnnbenchError(f"{what} needs {module.split('.')[0]}: "
                            f"pip install 'cnnbench[{extra}]'") from None
