"""Optimizers: importing this package registers every built-in optimizer."""

from cnnbench.optim import torch_optimizers  # noqa: F401  (registers the entries)
from cnnbench.optim.registry import OPTIMIZERS, create_optimizer, optimizer_def, resolve_hparams

__all__ = ["OPTIMIZERS", "create_optimizer", "optimizer_def", "resolve_hparams"]
