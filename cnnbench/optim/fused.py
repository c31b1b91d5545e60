"""One update for many runs at once: the built-in optimizers' rules over stacked tensors.

An ensemble (train/ensemble.py) keeps the parameters of its K members as the rows of one
tensor, `[K, N]` (N: one member's parameter count, all its parameters end to end), and every
optimizer state the same way. A rule here steps all the rows of one optimizer class in a fixed
number of tensor operations, whatever K and however many parameter tensors the network has, with
each member's hyper-parameters as a `[K, 1]` column (as HFTA fuses optimizers). Each rule is the
published update exactly as torch.optim (or cnnbench's own class) writes it, operation for
operation where the order changes the rounding; the tests hold every rule to its sequential
optimizer in fp64.

A rule also says how the stacked state maps to the class's own `state[p]` (so a member's
checkpoint is the one it would have written alone), and which settings must be equal for runs
to share one update (`structure`: nesterov or not, amsgrad, …). A class without a rule (a
user's optimizer, L-BFGS) steps each member on its own. cnnbench's own optimizers register
their rules beside their classes (quasi_hyperbolic.py, aggmo.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


@dataclass
class Rows:
    """What one fused update reads and writes; every tensor's first dimension is the members."""

    p: Tensor  # [S, N] parameters
    g: Tensor  # [S, N] gradients
    state: dict[str, Tensor]  # [S, N] per-element state ([S, B, N] for AggMo's velocities)
    counters: dict[str, Tensor]  # [S, 1] per-member counters (the step; NAdam's μ product)
    hp: dict[str, Tensor]  # [S, 1] per-member hyper-parameters, float64
    # the settings equal across the rows (a rule's `structure`), and `decay`: whether any row's
    # weight decay is not 0 (the others add 0·θ, exactly nothing)
    flags: dict[str, Any]

    def coef(self, value: Tensor) -> Tensor:
        """A float64 [S, 1] coefficient in the parameters' dtype."""
        return value.to(self.p.dtype)


@dataclass(frozen=True)
class FusedRule:
    """How one optimizer class steps stacked rows."""

    update: Callable[[Rows], None]
    hparams: Callable[[dict], dict[str, float]]  # a param group → its per-member numbers
    state_keys: Callable[[dict], tuple[str, ...]]  # the per-element state `state[p]` holds
    structure: Callable[[dict], tuple] = lambda group: ()
    # per-member counters: name → (its value in `state[p]` → float, float → `state[p]`'s value);
    # the value that starts a run is what an empty `state[p]` means
    counters: dict[str, tuple[Callable[[dict], float], Callable[[float], Any]]] = field(
        default_factory=dict)
    # per-element state a class fills before the first step (Adagrad's sum): its start value
    initial: Callable[[dict], dict[str, float]] = lambda group: {}
    velocity_count: Callable[[dict], int] = lambda group: 0  # AggMo: the extra state dimension


FUSED_RULES: dict[type[torch.optim.Optimizer], FusedRule] = {}


def fused(*classes: type[torch.optim.Optimizer]):
    """Register a rule for `classes` (decorates a function returning the rule)."""
    def register(build: Callable[[], FusedRule]) -> Callable[[], FusedRule]:
        rule = build()
        for cls in classes:
            FUSED_RULES[cls] = rule
        return build
    return register


def rule_for(optimizer: torch.optim.Optimizer) -> FusedRule | None:
    """The rule that steps `optimizer`'s runs together, or None (its own step, run by run):
    a class without a rule, several param groups, or settings no rule covers (maximize,
    differentiable, torch's fused kernels)."""
    rule = FUSED_RULES.get(type(optimizer))
    if rule is None or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if group.get("maximize") or group.get("differentiable") or group.get("fused"):
        return None
    return rule


def settings(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's (single) param group, with AdamW's decoupled decay spelled out: torch
    before 2.6 has AdamW as its own class, without the `decoupled_weight_decay` flag."""
    group = dict(optimizer.param_groups[0])
    group.setdefault("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))
    return group


def structure_key(optimizer: torch.optim.Optimizer) -> tuple | None:
    """Runs whose optimizers have equal keys share one fused update; None: no rule."""
    rule = rule_for(optimizer)
    if rule is None:
        return None
    return type(optimizer), rule.structure(settings(optimizer))


# ─── counters as torch.optim keeps them ─────────────────────────────────────────────────────────


def _scalar_tensor(value: float) -> Tensor:
    """torch.optim's per-parameter step: a float32 (default dtype) scalar on the CPU."""
    return torch.tensor(value, dtype=torch.get_default_dtype()
                        if torch.get_default_dtype() == torch.float64 else torch.float32)


def read_counter(key: str, start: float = 0.0) -> Callable[[dict], float]:
    """A counter as `state[p]` keeps it (`start` before the first step)."""
    return lambda state: float(state[key]) if key in state else start


def started_once(key: str) -> Callable[[dict], float]:
    """For a class that keeps no step (SGD, QHM, AggMo): 1 once `state[p][key]` exists."""
    return lambda state: 1.0 if state.get(key) is not None else 0.0


STEP = {"step": (read_counter("step"), _scalar_tensor)}


def pick(group: dict, *keys: str) -> dict[str, float]:
    """Those hyper-parameters of a param group, by name."""
    return {k: group[k] for k in keys}


def coupled_decay(rows: Rows) -> Tensor:
    """∇ + λθ (coupled weight decay), skipped when no member decays."""
    if rows.flags.get("decay"):
        return rows.g + rows.coef(rows.hp["weight_decay"]) * rows.p
    return rows.g


# ─── SGD, heavy-ball and Nesterov momentum ──────────────────────────────────────────────────────


def _sgd(rows: Rows) -> None:
    g = coupled_decay(rows)
    if rows.flags["momentum"]:
        buf, started = rows.state["momentum_buffer"], rows.counters["step"] > 0
        momentum = rows.hp["momentum"]
        # torch's first step copies the gradient into the buffer: 0·buf + 1·g
        buf.mul_(rows.coef(torch.where(started, momentum, 0.0))).add_(
            g * rows.coef(torch.where(started, 1 - rows.hp["dampening"], 1.0)))
        rows.counters["step"] += 1
        g = g + rows.coef(momentum) * buf if rows.flags["nesterov"] else buf
    rows.p.sub_(rows.coef(rows.hp["lr"]) * g)


@fused(torch.optim.SGD)
def _sgd_rule() -> FusedRule:
    return FusedRule(
        _sgd,
        lambda group: pick(group, "lr", "momentum", "dampening", "weight_decay"),
        lambda group: ("momentum_buffer",) if group["momentum"] else (),
        lambda group: (("momentum", group["momentum"] != 0), ("nesterov", group["nesterov"])),
        # SGD keeps no step: a run has started once its buffer exists
        counters={"step": (started_once("momentum_buffer"), None)})


# ─── Adam, AdamW ────────────────────────────────────────────────────────────────────────────────


def _adam_moments(rows: Rows) -> tuple[Tensor, Tensor]:
    """What Adam, NAdam and RAdam share: the step counted, weight decay (coupled, or decoupled
    as AdamW's), both moments updated. Returns the gradient used and the step."""
    hp, t = rows.hp, rows.counters["step"]
    t += 1
    g = rows.g
    if rows.flags["decay"]:
        if rows.flags["decoupled"]:
            rows.p.mul_(rows.coef(1 - hp["lr"] * hp["weight_decay"]))
        else:
            g = coupled_decay(rows)
    exp_avg, exp_avg_sq = rows.state["exp_avg"], rows.state["exp_avg_sq"]
    exp_avg.lerp_(g, rows.coef(1 - hp["beta1"]))
    exp_avg_sq.mul_(rows.coef(hp["beta2"])).addcmul_(g, g * rows.coef(1 - hp["beta2"]))
    return g, t


def _adam(rows: Rows) -> None:
    hp = rows.hp
    g, t = _adam_moments(rows)
    exp_avg, exp_avg_sq = rows.state["exp_avg"], rows.state["exp_avg_sq"]
    step_size = hp["lr"] / (1 - hp["beta1"] ** t)
    bias_correction2_sqrt = (1 - hp["beta2"] ** t).sqrt()
    second = exp_avg_sq
    if rows.flags["amsgrad"]:
        second = rows.state["max_exp_avg_sq"]
        torch.maximum(second, exp_avg_sq, out=second)
    denom = (second.sqrt() / rows.coef(bias_correction2_sqrt)).add_(rows.coef(hp["eps"]))
    rows.p.addcdiv_(exp_avg * rows.coef(-step_size), denom)


def betas(group: dict) -> dict[str, float]:
    return {"beta1": group["betas"][0], "beta2": group["betas"][1]}


@fused(torch.optim.Adam, torch.optim.AdamW)
def _adam_rule() -> FusedRule:
    return FusedRule(
        _adam,
        lambda group: {**betas(group), **pick(group, "lr", "eps", "weight_decay")},
        lambda group: ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"]
                                                    else ()),
        lambda group: (("amsgrad", group["amsgrad"]),
                       ("decoupled", bool(group["decoupled_weight_decay"]))),
        counters=STEP)


# ─── RMSprop, Adagrad, Adadelta, Adamax, NAdam, RAdam ───────────────────────────────────────────


def _rmsprop(rows: Rows) -> None:
    hp = rows.hp
    rows.counters["step"] += 1
    g = coupled_decay(rows)
    alpha = rows.coef(hp["alpha"])
    square_avg = rows.state["square_avg"]
    square_avg.mul_(alpha).addcmul_(g, g * rows.coef(1 - hp["alpha"]))
    if rows.flags["centered"]:
        grad_avg = rows.state["grad_avg"]
        grad_avg.lerp_(g, rows.coef(1 - hp["alpha"]))
        avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
    else:
        avg = square_avg.sqrt()
    avg = avg.add_(rows.coef(hp["eps"]))
    if rows.flags["momentum"]:
        buf = rows.state["momentum_buffer"]
        buf.mul_(rows.coef(hp["momentum"])).addcdiv_(g, avg)
        rows.p.sub_(rows.coef(hp["lr"]) * buf)
    else:
        rows.p.addcdiv_(g * rows.coef(-hp["lr"]), avg)


@fused(torch.optim.RMSprop)
def _rmsprop_rule() -> FusedRule:
    return FusedRule(
        _rmsprop,
        lambda group: pick(group, "lr", "alpha", "eps", "weight_decay", "momentum"),
        lambda group: ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ())
        + (("grad_avg",) if group["centered"] else ()),
        lambda group: (("centered", group["centered"]), ("momentum", group["momentum"] > 0)),
        counters=STEP)


def _adagrad(rows: Rows) -> None:
    hp, t = rows.hp, rows.counters["step"]
    t += 1
    g = coupled_decay(rows)
    clr = hp["lr"] / (1 + (t - 1) * hp["lr_decay"])
    state_sum = rows.state["sum"]
    state_sum.addcmul_(g, g)
    std = state_sum.sqrt().add_(rows.coef(hp["eps"]))
    rows.p.addcdiv_(g * rows.coef(-clr), std)


@fused(torch.optim.Adagrad)
def _adagrad_rule() -> FusedRule:
    return FusedRule(
        _adagrad,
        lambda group: pick(group, "lr", "lr_decay", "eps", "weight_decay"),
        lambda group: ("sum",),
        counters=STEP,
        initial=lambda group: {"sum": group["initial_accumulator_value"]})


def _adadelta(rows: Rows) -> None:
    hp = rows.hp
    rows.counters["step"] += 1
    g = coupled_decay(rows)
    rho, eps = rows.coef(hp["rho"]), rows.coef(hp["eps"])
    square_avg, acc_delta = rows.state["square_avg"], rows.state["acc_delta"]
    square_avg.mul_(rho).addcmul_(g, g * rows.coef(1 - hp["rho"]))
    std = square_avg.add(eps).sqrt_()
    delta = acc_delta.add(eps).sqrt_()
    delta.div_(std).mul_(g)
    acc_delta.mul_(rho).addcmul_(delta, delta * rows.coef(1 - hp["rho"]))
    rows.p.sub_(rows.coef(hp["lr"]) * delta)


@fused(torch.optim.Adadelta)
def _adadelta_rule() -> FusedRule:
    return FusedRule(
        _adadelta,
        lambda group: pick(group, "lr", "rho", "eps", "weight_decay"),
        lambda group: ("square_avg", "acc_delta"),
        counters=STEP)


def _adamax(rows: Rows) -> None:
    hp, t = rows.hp, rows.counters["step"]
    t += 1
    g = coupled_decay(rows)
    exp_avg, exp_inf = rows.state["exp_avg"], rows.state["exp_inf"]
    exp_avg.lerp_(g, rows.coef(1 - hp["beta1"]))
    torch.maximum(exp_inf.mul_(rows.coef(hp["beta2"])), g.abs().add_(rows.coef(hp["eps"])),
                  out=exp_inf)
    clr = hp["lr"] / (1 - hp["beta1"] ** t)
    rows.p.addcdiv_(exp_avg * rows.coef(-clr), exp_inf)


@fused(torch.optim.Adamax)
def _adamax_rule() -> FusedRule:
    return FusedRule(
        _adamax,
        lambda group: {**betas(group), **pick(group, "lr", "eps", "weight_decay")},
        lambda group: ("exp_avg", "exp_inf"),
        counters=STEP)


def _nadam(rows: Rows) -> None:
    hp = rows.hp
    g, t = _adam_moments(rows)
    bias_correction2 = 1 - hp["beta2"] ** t
    mu = hp["beta1"] * (1.0 - 0.5 * 0.96 ** (t * hp["momentum_decay"]))
    mu_next = hp["beta1"] * (1.0 - 0.5 * 0.96 ** ((t + 1) * hp["momentum_decay"]))
    # torch keeps the product as a float32 scalar: the same rounding here
    product = rows.counters["mu_product"]
    product.copy_((product.float() * mu.float()).double())
    exp_avg, exp_avg_sq = rows.state["exp_avg"], rows.state["exp_avg_sq"]
    denom = exp_avg_sq.div(rows.coef(bias_correction2)).sqrt().add_(rows.coef(hp["eps"]))
    rows.p.addcdiv_(g * rows.coef(-hp["lr"] * (1.0 - mu) / (1.0 - product)), denom)
    rows.p.addcdiv_(exp_avg * rows.coef(-hp["lr"] * mu_next / (1.0 - product * mu_next)),
                    denom)


@fused(torch.optim.NAdam)
def _nadam_rule() -> FusedRule:
    return FusedRule(
        _nadam,
        lambda group: {**betas(group), **pick(group, "lr", "eps", "weight_decay",
                                                                 "momentum_decay")},
        lambda group: ("exp_avg", "exp_avg_sq"),
        lambda group: (("decoupled", bool(group["decoupled_weight_decay"])),),
        counters={**STEP, "mu_product": (read_counter("mu_product", 1.0), _scalar_tensor)})


def _radam(rows: Rows) -> None:
    hp = rows.hp
    g, t = _adam_moments(rows)
    exp_avg, exp_avg_sq = rows.state["exp_avg"], rows.state["exp_avg_sq"]
    beta2 = hp["beta2"]
    bias_correction2 = 1 - beta2 ** t
    corrected = exp_avg / rows.coef(1 - hp["beta1"] ** t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2 ** t / bias_correction2
    rectified = rho_t > 5.0
    # where the variance is tractable (ρ_t > 5) the rectified adaptive step, else plain momentum
    rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
            ).clamp(min=0).sqrt()
    adaptive = rows.coef(bias_correction2.sqrt()) / exp_avg_sq.sqrt().add_(rows.coef(hp["eps"]))
    scale = torch.where(rectified, adaptive * rows.coef(rect), 1.0)
    rows.p.sub_(corrected * rows.coef(hp["lr"]) * scale)


@fused(torch.optim.RAdam)
def _radam_rule() -> FusedRule:
    return FusedRule(
        _radam,
        lambda group: {**betas(group), **pick(group, "lr", "eps", "weight_decay")},
        lambda group: ("exp_avg", "exp_avg_sq"),
        lambda group: (("decoupled", bool(group["decoupled_weight_decay"])),),
        counters=STEP)
