"""cnnbench: benchmark image classifiers and their optimizers from YAML suites.

The public names are imported on first use (module `__getattr__`), so that `import cnnbench` and
the light commands (`--help`, `schema`, `report`, …) do not pay for torch."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cnnbench.errors import CnnbenchError, SuiteError
from cnnbench.version import __version__  # noqa: F401  (re-exported)

if TYPE_CHECKING:
    from cnnbench.execute.runner import run_suite
    from cnnbench.models import create_model
    from cnnbench.optim import create_optimizer
    from cnnbench.results.loading import load_grad_norms, load_results
    from cnnbench.suite import RunSpec, expand, load_suite


_LAZY = {
    "run_suite": "cnnbench.execute.runner",
    "create_model": "cnnbench.models",
    "create_optimizer": "cnnbench.optim",
    "load_grad_norms": "cnnbench.results.loading",
    "load_results": "cnnbench.results.loading",
    "RunSpec": "cnnbench.suite",
    "expand": "cnnbench.suite",
    "load_suite": "cnnbench.suite",
}

__all__ = ["CnnbenchError", "SuiteError", "RunSpec", "create_model", "create_optimizer",
           "expand", "load_grad_norms", "load_results", "load_suite", "run_suite"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
