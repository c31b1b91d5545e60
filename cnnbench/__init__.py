"""cnnbench: benchmark image classifiers and their optimizers from YAML suites."""

from cnnbench.errors import CnnbenchError, SuiteError
from cnnbench.execute.runner import run_suite
from cnnbench.models import create_model
from cnnbench.optim import create_optimizer
from cnnbench.results.store import load_grad_norms, load_results
from cnnbench.suite import RunSpec, expand, load_suite

__all__ = ["CnnbenchError", "SuiteError", "RunSpec", "create_model", "create_optimizer",
           "expand", "load_grad_norms", "load_results", "load_suite", "run_suite"]
__version__ = "0.1.0"
