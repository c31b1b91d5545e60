"""Aggregated momentum (Lucas, Sun, Zemel & Grosse, "Aggregated Momentum: Stability Through
Passive Damping", ICLR 2019), written from the paper's update rule (its eq. 2):

    v⁽ⁱ⁾ ← β⁽ⁱ⁾·v⁽ⁱ⁾ − ∇L     for each of the K damping coefficients β⁽ⁱ⁾ (v starts at 0)
    θ ← θ + (γ/K)·Σᵢ v⁽ⁱ⁾

The fast velocities (small β) damp the oscillations of the slow ones. Default β = (0, 0.9, 0.99),
the paper's recommendation. Weight decay λ is coupled: ∇L ← ∇L + λθ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from cnnbench.optim.fused import FusedRule, Rows, coupled_decay, fused, started_once
from cnnbench.optim.registry import OPTIMIZERS, OptimizerDef
from cnnbench.optim.update import closure_loss, coupled_gradient


class AggMo(torch.optim.Optimizer):
    """K heavy-ball velocities with damping `betas`, averaged into one step of size lr."""

    def __init__(self, params: Iterable, lr: float = 0.01,
                 betas: tuple[float, ...] = (0.0, 0.9, 0.99), weight_decay: float = 0.0) -> None:
        if len(betas) == 0:
            raise ValueError("AggMo needs at least one beta")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = closure_loss(closure)
        for group in self.param_groups:
            betas = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = coupled_gradient(p, group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["velocities"] = torch.zeros((len(betas), *p.shape), dtype=p.dtype,
                                                      device=p.device)
                velocities = state["velocities"]
                for v, beta in zip(velocities, betas, strict=True):
                    v.mul_(beta).sub_(grad)
                p.add_(velocities.sum(0), alpha=group["lr"] / len(betas))
        return loss


@OPTIMIZERS.register
def aggmo() -> OptimizerDef:
    return OptimizerDef(AggMo, {"lr": 0.01, "betas": (0.0, 0.9, 0.99)},
                        "aggregated momentum, the paper's β=(0, 0.9, 0.99)",
                        "cnnbench (Lucas et al., ICLR 2019)")


# ─── the same update for the stacked members of an ensemble (optim/fused.py) ──────────────────


def _aggmo(rows: Rows) -> None:
    velocities = rows.state["velocities"]  # [S, B, N]
    rows.counters["step"] += 1
    g = coupled_decay(rows)
    velocities.mul_(rows.coef(rows.hp["betas"]).unsqueeze(-1)).sub_(g.unsqueeze(1))
    count = velocities.shape[1]
    rows.p.add_(velocities.sum(1) * rows.coef(rows.hp["lr"] / count))


@fused(AggMo)
def _aggmo_rule() -> FusedRule:
    return FusedRule(
        _aggmo,
        lambda group: {"lr": group["lr"], "weight_decay": group["weight_decay"],
                       "betas": tuple(group["betas"])},
        lambda group: ("velocities",),
        lambda group: (("betas", len(group["betas"])),),
        counters={"step": (started_once("velocities"), None)},
        velocity_count=lambda group: len(group["betas"]))
