"""Pieces every hand-written optimizer step shares (QHM, QHAdam, AggMo)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def closure_loss(closure: Callable[[], torch.Tensor] | None) -> torch.Tensor | None:
    """Evaluate an optimizer-step closure with gradients on, as torch.optim's own steps do."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def coupled_gradient(p: torch.Tensor, weight_decay: float) -> torch.Tensor:
    """∇ + λθ: coupled weight decay (L2 added to the gradient)."""
    if p.grad.is_sparse:
        raise RuntimeError("sparse gradients are not supported")
    return p.grad.add(p, alpha=weight_decay) if weight_decay else p.grad
