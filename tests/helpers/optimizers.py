"""A user's optimizer, as a suite names it (`tests.helpers.optimizers:PlainSGD`): a class the
fused update has no rule for, so it steps on its own inside an ensemble."""

from __future__ import annotations

import torch


class PlainSGD(torch.optim.Optimizer):
    """θ ← θ − lr·∇, written out."""

    def __init__(self, params, lr: float = 0.01) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss
