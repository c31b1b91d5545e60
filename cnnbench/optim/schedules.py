"""Learning-rate schedules, stepped once per optimizer step (so they are smooth within an epoch).

Each entry is `fn(optimizer, *, epochs, steps_per_epoch, **options) -> LRScheduler`, built from
torch.optim.lr_scheduler's classes. Options are given in epochs (the unit a suite speaks) and
turned into optimizer steps here. The lr a suite's grid gives is the base (for one-cycle: the
peak) lr; the engine records the lr each epoch's last step used in the history's `lr` column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim import lr_scheduler

from cnnbench.errors import CnnbenchError
from cnnbench.imports import accepted_kwargs
from cnnbench.registry import Registry

Scheduler = lr_scheduler.LRScheduler
SCHEDULES: Registry[Callable[..., Scheduler]] = Registry("schedule")


def _require(ok: bool, schedule: str, message: str) -> None:
    if not ok:
        raise CnnbenchError(f"schedule {schedule!r}: {message}")


@SCHEDULES.register
def constant(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> Scheduler:
    """The lr stays as given."""
    return lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@SCHEDULES.register
def step(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
         step_size: int, gamma: float = 0.1) -> Scheduler:
    """lr × gamma every `step_size` epochs."""
    _require(isinstance(step_size, int) and step_size >= 1, "step",
             f"step_size={step_size!r} must be a whole number of epochs ≥ 1")
    _require(gamma > 0, "step", f"gamma={gamma!r} must be > 0")
    return lr_scheduler.StepLR(optimizer, step_size * steps_per_epoch, gamma)


@SCHEDULES.register
def multistep(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
              milestones: list[int], gamma: float = 0.1) -> Scheduler:
    """lr × gamma at each milestone epoch."""
    _require(isinstance(milestones, list) and milestones
             and all(isinstance(m, int) and m >= 1 for m in milestones)
             and milestones == sorted(set(milestones)), "multistep",
             f"milestones={milestones!r} must be a rising list of epochs ≥ 1, e.g. [30, 60]")
    _require(gamma > 0, "multistep", f"gamma={gamma!r} must be > 0")
    return lr_scheduler.MultiStepLR(optimizer, [m * steps_per_epoch for m in milestones], gamma)


@SCHEDULES.register
def exponential(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
                gamma: float) -> Scheduler:
    """lr × gamma per epoch, spread evenly over its steps (gamma^(1/steps) per step)."""
    _require(0 < gamma <= 1, "exponential", f"gamma={gamma!r} must be in (0, 1]")
    return lr_scheduler.ExponentialLR(optimizer, gamma ** (1 / steps_per_epoch))


@SCHEDULES.register
def cosine(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
           warmup_epochs: float = 0, eta_min: float = 0.0) -> Scheduler:
    """Optional linear warm-up from lr/W to lr over W steps (`warmup_epochs`, may be a fraction),
    then cosine annealing from lr to `eta_min` over the remaining steps."""
    _require(0 <= warmup_epochs < epochs, "cosine",
             f"warmup_epochs={warmup_epochs!r} must be in [0, epochs={epochs})")
    _require(eta_min >= 0, "cosine", f"eta_min={eta_min!r} must be ≥ 0")
    total = epochs * steps_per_epoch
    warmup = round(warmup_epochs * steps_per_epoch)
    anneal = lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warmup, eta_min=eta_min)
    if warmup == 0:
        return anneal
    # step k < W uses lr·(k+1)/W: the last warm-up step reaches the full lr
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0,
                                 total_iters=max(warmup - 1, 1))
    return lr_scheduler.SequentialLR(optimizer, [ramp, anneal], milestones=[warmup])


@SCHEDULES.register
def onecycle(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
             pct_start: float = 0.3, div_factor: float = 25.0, final_div_factor: float = 1e4,
             cycle_momentum: bool = False) -> Scheduler:
    """Smith's one-cycle policy (torch's OneCycleLR, cosine): from lr/div_factor up to the grid's
    lr over `pct_start` of training, then down to lr/(div_factor·final_div_factor). Momentum is
    left alone unless `cycle_momentum: true` (then it cycles 0.95 → 0.85 → 0.95, as in torch)."""
    _require(0 < pct_start < 1, "onecycle", f"pct_start={pct_start!r} must be in (0, 1)")
    _require(div_factor > 0 and final_div_factor > 0, "onecycle",
             "div_factor and final_div_factor must be > 0")
    peak = optimizer.param_groups[0]["lr"]
    try:
        return lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=epochs * steps_per_epoch,
                                       pct_start=pct_start, div_factor=div_factor,
                                       final_div_factor=final_div_factor,
                                       cycle_momentum=cycle_momentum)
    except ValueError as exc:  # e.g. cycle_momentum with an optimizer that has no momentum
        raise CnnbenchError(f"schedule 'onecycle': {exc}") from None


@dataclass(frozen=True)
class LinearScaling:
    """Goyal et al. 2017's rule for large batches: the grid's lr is the lr of a batch of
    `reference_batch`; a batch of B trains at lr × B / reference_batch, reached by a linear
    warm-up from the grid's lr over `warmup_epochs` (none where B ≤ reference_batch). The
    schedule named then runs over the epochs after the warm-up (torch's SequentialLR): its
    epochs (step_size, milestones, cosine's length) count from the warm-up's end."""

    reference_batch: int = 256
    warmup_epochs: int = 5

    @classmethod
    def parse(cls, value: Any, epochs: int) -> LinearScaling | None:
        """`linear_scaling: true` or `{reference_batch: 256, warmup_epochs: 5}`."""
        if value is None or value is False:
            return None
        options = {} if value is True else value
        _require(isinstance(options, dict) and set(options) <= {"reference_batch",
                                                                 "warmup_epochs"},
                 "linear_scaling", f"{value!r}: write true or {{reference_batch: 256, "
                 "warmup_epochs: 5}")
        rule = cls(**options)
        _require(isinstance(rule.reference_batch, int) and rule.reference_batch >= 1,
                 "linear_scaling", f"reference_batch={rule.reference_batch!r} must be a whole "
                 "number of samples ≥ 1")
        _require(isinstance(rule.warmup_epochs, int) and 0 <= rule.warmup_epochs < epochs,
                 "linear_scaling", f"warmup_epochs={rule.warmup_epochs!r} must be a whole "
                 f"number of epochs in [0, epochs={epochs})")
        return rule

    def factor(self, batch_size: int) -> float:
        return batch_size / self.reference_batch


def create_schedule(
    spec: str | dict, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int,
    batch_size: int | None = None
) -> Scheduler:
    """Build the schedule a suite names: `constant` or `{name: cosine, warmup_epochs: 1}`; with
    `linear_scaling` (any schedule), the lr scaled to `batch_size` (the global batch)."""
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", "constant")
    scaling = LinearScaling.parse(options.pop("linear_scaling", None), epochs)
    if scaling is None or batch_size is None:
        return _schedule(name, options, optimizer, epochs=epochs,
                         steps_per_epoch=steps_per_epoch)
    factor = scaling.factor(batch_size)
    for group in optimizer.param_groups:  # the schedule's base lr: the scaled one
        group["lr"] *= factor
    warmup_epochs = scaling.warmup_epochs if factor > 1 else 0
    inner = _schedule(name, options, optimizer, epochs=epochs - warmup_epochs,
                      steps_per_epoch=steps_per_epoch)
    warmup = warmup_epochs * steps_per_epoch
    if warmup == 0:
        return inner
    # from the grid's lr (1/factor of the scaled one) up to the scaled lr over the warm-up
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1 / factor, end_factor=1.0,
                                 total_iters=warmup)
    return lr_scheduler.SequentialLR(optimizer, [ramp, inner], milestones=[warmup])


def _schedule(name: str, options: dict, optimizer: torch.optim.Optimizer, *, epochs: int,
              steps_per_epoch: int) -> Scheduler:
    fn = SCHEDULES.get(name)
    accepted, _ = accepted_kwargs(fn)
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = sorted(accepted - {"optimizer", "epochs", "steps_per_epoch"})
        raise CnnbenchError(
            f"schedule {name!r} takes no {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    try:
        return fn(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch, **options)
    except TypeError as exc:  # a required option is missing, e.g. step without step_size
        raise CnnbenchError(f"schedule {name!r}: {exc}") from None


class _ScheduleProbe(torch.optim.Optimizer):
    """One param group with momentum and no parameters, made without `Optimizer.__init__`
    (whose first `add_param_group` imports torch._dynamo: 1.4 s of `cnnbench validate`)."""

    def __init__(self) -> None:  # Optimizer.__init__ deliberately not called: see above
        self.defaults = {"lr": 1.0, "momentum": 0.9}
        self.param_groups = [{"params": [], **self.defaults}]
        self.state = {}

    def step(self, closure=None) -> None:
        return None


def check_schedule(spec: str | dict, *, epochs: int) -> None:
    """Build the schedule on a stand-in optimizer, so bad options fail before any run starts."""
    create_schedule(spec, _ScheduleProbe(), epochs=epochs, steps_per_epoch=1)
