"""Optimizers: importing this package registers every built-in optimizer."""

from cnnbench.optim import aggmo, quasi_hyperbolic, torch_optimizers  # noqa: F401  (registers)
from cnnbench.optim.registry import (
    OPTIMIZERS,
    create_optimizer,
    effective_defaults,
    optimizer_def,
    resolve_hparams,
)

__all__ = ["OPTIMIZERS", "create_optimizer", "effective_defaults", "optimizer_def",
           "resolve_hparams"]
