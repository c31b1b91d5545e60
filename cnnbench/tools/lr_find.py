"""The lr range test (Smith, 2017, "Cyclical learning rates", §3.3): one short run whose lr grows
geometrically each step from `lr_min` to `lr_max`, its loss against the lr as a figure, and a
start grid for an lr search suggested from it.

The loss is smoothed by an exponential moving average (bias-corrected, β = 0.98, as is usual for
this test); the test stops early once the smoothed loss exceeds `diverge` times its minimum, or
goes non-finite. The suggested start grid (`suite.starts.suggested_grid`) spans the two decades
below the lr of the minimal smoothed loss (past it the loss climbs: too large), five points at
half-decade spacing; an lr search then expands, refines and confirms from there (`start: auto`
runs this test itself: `execute/starts.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnbench.data import DeviceData
from cnnbench.errors import CnnbenchError
from cnnbench.models import create_model
from cnnbench.optim import create_optimizer
from cnnbench.suite.starts import SETTINGS, suggested_grid
from cnnbench.train.trainer import loss_fn

SMOOTHING = 0.98


class NoFiniteLoss(CnnbenchError):
    """The loss was not finite at the first step: the test has no lr to suggest."""


@dataclass(frozen=True)
class RangeTest:
    """The per-step lrs and losses (raw and smoothed) and what they suggest."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    min_loss_lr: float  # the lr of the lowest smoothed loss
    stopped_early: bool  # the loss diverged before lr_max

    @property
    def start_grid(self) -> tuple[float, float, int]:
        """(low, high, points) of the suggested search start grid."""
        return suggested_grid(self.min_loss_lr)


def range_test(model: str, data: DeviceData, optimizer: str, *,
               model_kwargs: dict[str, Any] | None = None,
               hparams: dict[str, Any] | None = None, lr_min: float = SETTINGS["lr_min"],
               lr_max: float = SETTINGS["lr_max"], steps: int = int(SETTINGS["steps"]),
               batch_size: int = 128, seed: int = 0,
               diverge: float = SETTINGS["diverge"]) -> RangeTest:
    """Train `model` (with `model_kwargs`) on `data`'s device by `optimizer` (with `hparams`,
    but the lr) for at most `steps` steps, the lr growing from `lr_min` to `lr_max`. Seeded:
    the same call on the same device gives the same curve."""
    device = data.device
    torch.manual_seed(seed)
    channels, size, _ = data.shape
    net = create_model(model, in_channels=channels, num_classes=data.num_classes,
                       image_size=size, **(model_kwargs or {})).to(device)
    opt = create_optimizer(optimizer, net.parameters(), **{**(hparams or {}), "lr": lr_min})
    generator = torch.Generator(device=device).manual_seed(seed)
    growth = (lr_max / lr_min) ** (1 / max(1, steps - 1))
    lrs, losses, smoothed = [], [], []
    average, best, stopped = 0.0, math.inf, False
    batches = iter(())
    net.train()
    for step in range(steps):
        lr = lr_min * growth ** step
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(batches, (None, None))
        if x is None:  # a new epoch of shuffled batches
            batches = data.train_batches(batch_size, generator)
            x, y = next(batches)
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            stopped = True
            break
        average = SMOOTHING * average + (1 - SMOOTHING) * value
        smooth = average / (1 - SMOOTHING ** (step + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(smooth)
        best = min(best, smooth)
        if smooth > diverge * best:
            stopped = True
            break
    if not smoothed:
        raise NoFiniteLoss(f"the loss was not finite at the first step (lr {lr_min:.3g}): "
                           "no lr to suggest")
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    return RangeTest(lrs, losses, smoothed, lrs[lowest], stopped)


def draw(test: RangeTest, title: str, out: Path) -> Path:
    """The loss against the lr (log axis), the minimum and the suggested grid marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    low, high, _ = test.start_grid
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(test.lrs, test.losses, color="0.75", linewidth=1, label="loss per step")
    ax.plot(test.lrs, test.smoothed, color="C0", linewidth=2, label="smoothed")
    ax.axvspan(low, high, color="C2", alpha=0.15, label="suggested start grid")
    ax.axvline(test.min_loss_lr, color="C3", linestyle="--", linewidth=1,
               label=f"lowest loss at {test.min_loss_lr:.3g}")
    ax.set_xscale("log")
    top = min(max(test.smoothed), 4 * min(test.smoothed)) if test.smoothed else 1
    ax.set_ylim(bottom=0, top=top * 1.1)  # a loss is never negative
    ax.set(xlabel="learning rate", ylabel="training loss", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
