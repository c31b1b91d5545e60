"""Train one RunSpec: seeded model and data order, fused softmax cross-entropy, evaluation on
val and test after every epoch, a divergence guard, and a history row per evaluation."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnbench import signals
from cnnbench.checkpoint import Checkpoint
from cnnbench.data import DeviceData
from cnnbench.data.device import Split
from cnnbench.env import device_name
from cnnbench.flops import count_flops
from cnnbench.models import count_parameters, create_model
from cnnbench.optim import create_optimizer
from cnnbench.precision import autocast, grad_scaler, prepare_model, to_layout
from cnnbench.probes import (
    MemoryProbe,
    NullTimer,
    StepTimer,
    grad_norms,
    peak_flops_per_s,
    state_bytes,
    throughput,
)
from cnnbench.schedules import create_schedule
from cnnbench.suite import RunSpec


@dataclass(frozen=True)
class RunResult:
    """What a run produced: one summary row and its history rows."""

    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class Diverged(Exception):
    """The loss went non-finite or far above its start."""


class TimedOut(Exception):
    """The run passed `train.time_limit_s`."""


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Raise TimedOut after `seconds`, even inside a step that hangs (SIGALRM, main thread)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        yield
        return

    def fire(signum, frame):
        raise TimedOut(f"run stopped after train.time_limit_s={seconds:g} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Softmax + cross-entropy in its fused, numerically stable (log-sum-exp) form."""
    return F.cross_entropy(logits, targets, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, split: Split | None,
             batch_size: int) -> tuple[float, float]:
    """Mean loss and accuracy (a fraction) over a split; NaN for an absent split."""
    if split is None or len(split) == 0:
        return math.nan, math.nan
    model.eval()
    loss_sum = torch.zeros((), device=data.device)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    for x, y in data.eval_batches(split, batch_size):
        logits = model(x)
        loss_sum += loss_fn(logits, y, "sum")
        correct += (logits.argmax(1) == y).sum()
    n = len(split)
    return loss_sum.item() / n, correct.item() / n


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reached(target: dict | None, row: dict) -> bool:
    if not target:
        return False
    value = row.get(target["metric"], math.nan)
    if target["metric"].endswith("loss"):
        return value <= target["value"]
    return value >= target["value"]


class _Trainer:
    """The state of one run while it trains; `run()` returns the history rows."""

    def __init__(self, spec: RunSpec, data: DeviceData) -> None:
        self.spec, self.data, self.device = spec, data, data.device
        channels, size, _ = data.shape
        torch.manual_seed(spec.seed)  # weights and dropout
        self.model = create_model(spec.model, in_channels=channels, num_classes=data.num_classes,
                                  image_size=size, **spec.model_kwargs).to(self.device)
        self.optimizer = create_optimizer(spec.optimizer_name, self.model.parameters(),
                                          **spec.hparams)
        self.precision = spec.train.get("precision") or "fp32"
        self.channels_last = bool(spec.train.get("channels_last"))
        self.net = prepare_model(self.model, channels_last=self.channels_last,
                                 compile=bool(spec.train.get("compile")))
        self.scaler = grad_scaler(self.device, self.precision)
        n = len(data.train)
        self.full_batch = spec.batch_size == "full"
        self.batch_size = n if self.full_batch else min(int(spec.batch_size), n)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        self.scheduler = create_schedule(spec.train["schedule"], self.optimizer,
                                         epochs=spec.train["epochs"],
                                         steps_per_epoch=self.steps_per_epoch)
        # the lr the latest optimizer step used (before any step: the one the first will use)
        self.lr_used = self.optimizer.param_groups[0]["lr"]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(spec.seed)
        # reading the loss forces a device sync: every step on CPU (free), every 25 on CUDA
        self.check_every = 1 if self.device.type == "cpu" else 25
        self.start_loss: float | None = None
        self.steps = self.samples = 0
        self.train_s = self.eval_s = 0.0
        self.time_to_target_s: float | None = None
        self.timer = StepTimer(self.device) if "time" in spec.probes else NullTimer()
        self.grad_norm_rows: list[dict[str, Any]] | None = (
            [] if "grad_norms" in spec.probes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.net(to_layout(x, self.channels_last))

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the summed loss and the correct count, on the device."""
        out: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            if self.full_batch:
                return self._full_batch_gradient(x, y, out)
            logits = self.forward(x)
            loss = loss_fn(logits, y)
            self._backward(loss)
            out["loss_sum"] = loss.detach() * len(y)
            out["correct"] = (logits.detach().argmax(1) == y).sum()
            return loss

        self.lr_used = self.optimizer.param_groups[0]["lr"]
        if self.scaler is None:
            self.optimizer.step(closure)
        else:  # GradScaler takes no closure: unscale, skip the step on inf/NaN, adapt the scale
            closure()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.scheduler.step()
        return out["loss_sum"], out["correct"]

    def _full_batch_gradient(self, x: torch.Tensor, y: torch.Tensor,
                             out: dict[str, torch.Tensor]) -> torch.Tensor:
        """∇L = 1/n Σ ∇loss_i, accumulated over chunks that fit in memory."""
        n, chunk = len(y), self.spec.train["eval_batch_size"]
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for start in range(0, n, chunk):
            logits = self.forward(x[start:start + chunk])
            part = loss_fn(logits, y[start:start + chunk], "sum")
            self._backward(part / n)
            loss_sum += part.detach()
            correct += (logits.detach().argmax(1) == y[start:start + chunk]).sum()
        out["loss_sum"], out["correct"] = loss_sum, correct
        return loss_sum / n

    def _backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def guard(self, loss_sum: torch.Tensor, batch: int) -> None:
        if self.steps % self.check_every:
            return
        loss = loss_sum.item() / batch
        if self.start_loss is None:
            self.start_loss = loss
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} at step {self.steps}")
        if loss > self.spec.train["divergence_factor"] * self.start_loss:
            raise Diverged(f"loss {loss:.4g} at step {self.steps} exceeds "
                           f"{self.spec.train['divergence_factor']:g}× its start "
                           f"{self.start_loss:.4g}")

    def train_epoch(self) -> tuple[float, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        start = time.perf_counter()
        if self.full_batch:
            batches = iter([(self.data.normalize(self.data.train.x), self.data.train.y)])
        else:
            batches = self.data.train_batches(self.batch_size, self.generator)
        self.timer.data_start()
        for x, y in batches:
            self.timer.compute_start()
            step_loss, step_correct = self.step(x, y)
            self.steps += 1
            self.samples += len(y)
            self.guard(step_loss, len(y))
            if self.steps == 1 and self.grad_norm_rows is not None:
                self.record_grad_norms(0)  # the gradient at initialisation
            signals.check()  # a stop signal ends the run here, between two steps
            loss_sum += step_loss
            correct += step_correct
            self.timer.data_start()  # also the end of this step
        _synchronize(self.device)
        self.train_s += time.perf_counter() - start
        self.timer.epoch_end()
        n = len(self.data.train)
        return loss_sum.item() / n, correct.item() / n

    def record_grad_norms(self, epoch: int) -> None:
        """Per-parameter norms of the last step's gradient."""
        self.grad_norm_rows += [{"run_id": self.spec.run_id, "epoch": epoch, "step": self.steps,
                                 **row} for row in grad_norms(self.model)]

    def evaluate_row(self, epoch: int, train_loss: float, train_acc: float) -> dict[str, Any]:
        start = time.perf_counter()
        batch = self.spec.train["eval_batch_size"]
        with autocast(self.device, self.precision):
            val_loss, val_acc = evaluate(self.net, self.data, self.data.val, batch)
            test_loss, test_acc = evaluate(self.net, self.data, self.data.test, batch)
        if self.grad_norm_rows is not None:
            self.record_grad_norms(epoch)
        self.eval_s += time.perf_counter() - start
        row = {"run_id": self.spec.run_id, "epoch": epoch, "step": self.steps,
               "samples": self.samples, "elapsed_s": self.train_s,
               "lr": self.lr_used,
               "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
               "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc}
        if self.time_to_target_s is None and _reached(self.spec.train.get("target"), row):
            self.time_to_target_s = self.train_s
        return row

    def run(self, history: list[dict[str, Any]], on_epoch=None, *, after_epoch=None) -> None:
        """Train the epochs not yet in `history` (empty, or restored from a checkpoint),
        appending history rows as they come (kept if the run diverges)."""
        if not history:
            history.append(self.evaluate_row(0, math.nan, math.nan))
        for epoch in range(len(history), self.spec.train["epochs"] + 1):
            train_loss, train_acc = self.train_epoch()
            history.append(self.evaluate_row(epoch, train_loss, train_acc))
            if after_epoch is not None:
                after_epoch(epoch)
            if on_epoch is not None:
                on_epoch(epoch, history[-1])


def train(spec: RunSpec, data: DeviceData, on_epoch=None,
          checkpoint: Checkpoint | None = None) -> RunResult:
    """Train one run on data already on its device; divergence ends it early as `diverged`.

    With a `checkpoint`, the run resumes from it when there is one, and saves one after every
    epoch; a stop signal ends it as `interrupted`. Other exceptions propagate: the executor
    records them as `error`.
    """
    started = time.time()
    wall_start = time.perf_counter()
    memory = MemoryProbe(data.device)
    if "memory" in spec.probes:
        memory.start()
    trainer = _Trainer(spec, data)
    history: list[dict[str, Any]] = []
    resumed = checkpoint.load() if checkpoint is not None else None
    if resumed is not None:
        history = checkpoint.restore(trainer, resumed)
        started, wall_start = resumed["start_time"], wall_start - resumed["wall_s"]

    def save(epoch: int) -> None:
        checkpoint.save(trainer, history, epoch=epoch, start_time=started,
                        wall_s=time.perf_counter() - wall_start)

    status, message = "ok", ""
    try:
        with time_limit(spec.train.get("time_limit_s")):
            trainer.run(history, on_epoch, after_epoch=save if checkpoint is not None else None)
    except signals.Interrupted as exc:
        done = len(history) - 1
        status, message = "interrupted", (f"{exc} during epoch {done + 1}; re-run to resume "
                                          f"after epoch {done}")
    except Diverged as exc:
        status, message = "diverged", str(exc)
    except TimedOut as exc:
        status, message = "timeout", str(exc)
    wall_s = time.perf_counter() - wall_start
    probes = _probe_columns(spec, data, trainer, memory)
    epochs_done = max(0, len(history) - 1)
    final = history[-1] if history else {}
    val_accs = [r["val_acc"] for r in history[1:] if not math.isnan(r["val_acc"])]
    val_losses = [r["val_loss"] for r in history[1:] if not math.isnan(r["val_loss"])]
    summary = {
        "status": status,
        "message": message,
        "epochs_done": epochs_done,
        "resumed_from_epoch": resumed["epoch"] if resumed is not None else None,
        "steps": trainer.steps,
        "samples": trainer.samples,
        **{k: final.get(k, math.nan) for k in
           ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")},
        "best_val_acc": max(val_accs) if val_accs else math.nan,
        "best_val_loss": min(val_losses) if val_losses else math.nan,
        "wall_s": wall_s,
        "train_s": trainer.train_s,
        "eval_s": trainer.eval_s,
        "s_per_epoch": trainer.train_s / epochs_done if epochs_done else math.nan,
        "samples_per_s": trainer.samples / trainer.train_s if trainer.train_s else math.nan,
        "time_to_target_s": trainer.time_to_target_s,
        "params": count_parameters(trainer.model),
        **probes,
        # every hyper-parameter the optimizer used, torch's own defaults included
        "optimizer_hparams": dict(trainer.optimizer.defaults),
        "train_size": len(data.train),
        "val_size": len(data.val) if data.val is not None else 0,
        "test_size": len(data.test),
        "start_time": started,
        "end_time": time.time(),
    }
    return RunResult(summary, history)


def _probe_columns(spec: RunSpec, data: DeviceData, trainer: _Trainer,
                   memory: MemoryProbe) -> dict[str, Any]:
    """The `runs` columns of the probes the suite switched on (see README, "Probes")."""
    columns: dict[str, Any] = {"precision": trainer.precision}
    if "time" in spec.probes:
        columns.update(trainer.timer.summary())
    if "memory" in spec.probes:
        columns.update(memory.summary())
        columns.update(state_bytes(trainer.model, trainer.optimizer))
    if "flops" in spec.probes:
        try:
            forward, training = count_flops(trainer.model, data.shape)
        except Exception:  # a user model that cannot run on meta tensors: FLOPs stay unknown
            forward = training = None
        peak = peak_flops_per_s(device_name(data.device), trainer.precision)
        columns.update({
            "flops_per_sample": forward,
            "train_flops_per_step": training and training * trainer.batch_size,
            "peak_flops_per_s": peak,
            # all of train_s: warm-up and data waits included, like samples_per_s
            **throughput(training and training * trainer.samples, trainer.train_s, peak)})
    if trainer.grad_norm_rows is not None:
        columns["grad_norms"] = trainer.grad_norm_rows  # the store keeps them as their own table
    return columns
