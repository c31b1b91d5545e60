"""Quasi-hyperbolic momentum and Adam (Ma & Yarats, "Quasi-hyperbolic momentum and Adam for deep
learning", ICLR 2019), written from the paper's update rules (its eqs. for QHM and QHAdam).

QHM averages a plain SGD step and a momentum step, weighted by the immediate discount ν:

    g ← β·g + (1−β)·∇L                       (g starts at 0; no bias correction)
    θ ← θ − α·[(1−ν)·∇L + ν·g]

QHAdam does the same for both of Adam's moments, with Adam's bias corrections:

    g ← β₁·g + (1−β₁)·∇L,   s ← β₂·s + (1−β₂)·(∇L)²,   ĝ = g/(1−β₁ᵗ),   ŝ = s/(1−β₂ᵗ)
    θ ← θ − α·[(1−ν₁)·∇L + ν₁·ĝ] / (√[(1−ν₂)·(∇L)² + ν₂·ŝ] + ε)

ν=1 gives (normalised) momentum SGD and Adam back; ν=0 gives SGD and a sign-like step. The
defaults are the paper's recommendations (QHM ν=0.7, β=0.999; QHAdam ν=(0.7, 1), β=(0.995, 0.999)),
not values that reduce them to their parents. Weight decay λ is coupled: ∇L ← ∇L + λθ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from cnnbench.optim.fused import (
    FusedRule,
    Rows,
    betas,
    coupled_decay,
    fused,
    pick,
    read_counter,
    started_once,
)
from cnnbench.optim.registry import OPTIMIZERS, OptimizerDef
from cnnbench.optim.update import closure_loss, coupled_gradient

PAPER = "cnnbench (Ma & Yarats, ICLR 2019)"


class QHM(torch.optim.Optimizer):
    """Quasi-hyperbolic momentum: θ ← θ − lr·[(1−nu)·∇ + nu·g], g the EMA of ∇ with `momentum`."""

    def __init__(self, params: Iterable, lr: float = 0.1, momentum: float = 0.999,
                 nu: float = 0.7, weight_decay: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "nu": nu,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = closure_loss(closure)
        for group in self.param_groups:
            lr, beta, nu = group["lr"], group["momentum"], group["nu"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = coupled_gradient(p, group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(beta).add_(grad, alpha=1 - beta)
                p.add_(grad, alpha=-lr * (1 - nu)).add_(buf, alpha=-lr * nu)
        return loss


class QHAdam(torch.optim.Optimizer):
    """Quasi-hyperbolic Adam: Adam's two moments each mixed with the current gradient by `nus`."""

    def __init__(self, params: Iterable, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.995, 0.999), nus: tuple[float, float] = (0.7, 1.0),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        if len(betas) != 2 or len(nus) != 2:
            raise ValueError(f"QHAdam takes two betas and two nus, got {betas} and {nus}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "nus": tuple(nus), "eps": eps,
                                  "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = closure_loss(closure)
        for group in self.param_groups:
            (beta1, beta2), (nu1, nu2) = group["betas"], group["nus"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = coupled_gradient(p, group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t, g, s = state["step"], state["exp_avg"], state["exp_avg_sq"]
                g.mul_(beta1).add_(grad, alpha=1 - beta1)
                s.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                numerator = torch.lerp(grad, g / (1 - beta1**t), nu1)
                second = torch.lerp(grad * grad, s / (1 - beta2**t), nu2)
                p.addcdiv_(numerator, second.sqrt_().add_(group["eps"]), value=-group["lr"])
        return loss


@OPTIMIZERS.register
def qhm() -> OptimizerDef:
    # lr 0.1 matches momentum's 0.01 at β=0.9: QHM's momentum is normalised by (1−β).
    return OptimizerDef(QHM, {"lr": 0.1, "momentum": 0.999, "nu": 0.7},
                        "quasi-hyperbolic momentum, the paper's ν=0.7, β=0.999", PAPER)


@OPTIMIZERS.register
def qhadam() -> OptimizerDef:
    return OptimizerDef(QHAdam, {"lr": 1e-3, "betas": (0.995, 0.999), "nus": (0.7, 1.0)},
                        "quasi-hyperbolic Adam, the paper's ν=(0.7, 1), β=(0.995, 0.999)", PAPER)


# ─── the same updates for the stacked members of an ensemble (optim/fused.py) ──────────────────


def _qhm(rows: Rows) -> None:
    hp = rows.hp
    rows.counters["step"] += 1
    g = coupled_decay(rows)
    buf = rows.state["momentum_buffer"]
    buf.mul_(rows.coef(hp["momentum"])).add_(g * rows.coef(1 - hp["momentum"]))
    rows.p.add_(g * rows.coef(-hp["lr"] * (1 - hp["nu"]))).add_(
        buf * rows.coef(-hp["lr"] * hp["nu"]))


@fused(QHM)
def _qhm_rule() -> FusedRule:
    # QHM's state holds no step: a run has started once its buffer exists
    return FusedRule(
        _qhm,
        lambda group: pick(group, "lr", "momentum", "nu", "weight_decay"),
        lambda group: ("momentum_buffer",),
        counters={"step": (started_once("momentum_buffer"), None)})


def _qhadam(rows: Rows) -> None:
    hp, t = rows.hp, rows.counters["step"]
    t += 1
    g = coupled_decay(rows)
    exp_avg, exp_avg_sq = rows.state["exp_avg"], rows.state["exp_avg_sq"]
    exp_avg.mul_(rows.coef(hp["beta1"])).add_(g * rows.coef(1 - hp["beta1"]))
    exp_avg_sq.mul_(rows.coef(hp["beta2"])).addcmul_(g, g * rows.coef(1 - hp["beta2"]))
    numerator = torch.lerp(g, exp_avg / rows.coef(1 - hp["beta1"] ** t), rows.coef(hp["nu1"]))
    second = torch.lerp(g * g, exp_avg_sq / rows.coef(1 - hp["beta2"] ** t),
                        rows.coef(hp["nu2"]))
    rows.p.addcdiv_(numerator * rows.coef(-hp["lr"]), second.sqrt_().add_(rows.coef(hp["eps"])))


@fused(QHAdam)
def _qhadam_rule() -> FusedRule:
    return FusedRule(
        _qhadam,
        lambda group: {**betas(group), "nu1": group["nus"][0], "nu2": group["nus"][1],
                       **pick(group, "lr", "eps", "weight_decay")},
        lambda group: ("exp_avg", "exp_avg_sq"),
        counters={"step": (read_counter("step"), int)})
