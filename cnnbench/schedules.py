"""Learning-rate schedules, stepped once per optimizer step.

Each entry is `fn(optimizer, *, epochs, steps_per_epoch, **options) -> LRScheduler`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from cnnbench.errors import CnnbenchError
from cnnbench.imports import accepted_kwargs
from cnnbench.registry import Registry

Scheduler = torch.optim.lr_scheduler.LRScheduler
SCHEDULES: Registry[Callable[..., Scheduler]] = Registry("schedule")


@SCHEDULES.register
def constant(optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int) -> Scheduler:
    """The lr stays as given."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def create_schedule(
    spec: str | dict, optimizer: torch.optim.Optimizer, *, epochs: int, steps_per_epoch: int
) -> Scheduler:
    """Build the schedule a suite names: `constant` or `{name: cosine, warmup_epochs: 1}`."""
    options = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = options.pop("name", "constant")
    fn = SCHEDULES.get(name)
    accepted, _ = accepted_kwargs(fn)
    unknown = sorted(set(options) - accepted)
    if unknown:
        valid = sorted(accepted - {"optimizer", "epochs", "steps_per_epoch"})
        raise CnnbenchError(
            f"schedule {name!r} takes no {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(valid) or 'none'}"
        )
    return fn(optimizer, epochs=epochs, steps_per_epoch=steps_per_epoch, **options)
