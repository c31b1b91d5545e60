"""One run while it trains: the seeded model and data order, the optimizer step (mini-batch,
full-batch or with a GradScaler), the fused softmax cross-entropy, evaluation and the divergence
guard. `Trainer.state_dict()` is what a checkpoint holds."""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnbench.data import DeviceData
from cnnbench.data.device import Split, rank_dropped
from cnnbench.models import create_model
from cnnbench.optim import create_optimizer
from cnnbench.optim.schedules import create_schedule
from cnnbench.suite import RunSpec
from cnnbench.train import signals
from cnnbench.train.distributed import RankGroup
from cnnbench.train.machine import MachineProbe
from cnnbench.train.precision import (
    autocast,
    grad_scaler,
    param_dtype,
    prepare_model,
    resolve_channels_last,
    to_layout,
    use_cuda_defaults,
)
from cnnbench.train.probes import (
    NullTimer,
    StepTimer,
    grad_norms,
)


class Diverged(Exception):
    """The loss went non-finite or far above its start."""


class DeviceMismatch(Exception):
    """A checkpoint saved on another device type (e.g. CUDA, resumed on a CPU node)."""


class TimedOut(Exception):
    """The run passed `train.time_limit_s`."""


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Softmax + cross-entropy in its fused, numerically stable (log-sum-exp) form."""
    return F.cross_entropy(logits, targets, reduction=reduction)


@torch.no_grad()
def evaluate(model: nn.Module, data: DeviceData, split: Split | None,
             batch_size: int, dtype: torch.dtype = torch.float32) -> tuple[float, float]:
    """Mean loss and accuracy (a fraction) over a split; NaN for an absent split. `dtype`: the
    model's (its inputs and the loss sum are cast to it)."""
    if split is None or len(split) == 0:
        return math.nan, math.nan
    model.eval()
    loss_sum = torch.zeros((), device=data.device, dtype=dtype)
    correct = torch.zeros((), device=data.device, dtype=torch.long)
    for x, y in data.eval_batches(split, batch_size):
        logits = model(x.to(dtype))
        loss_sum += loss_fn(logits, y, "sum")
        correct += (logits.argmax(1) == y).sum()
    n = len(split)
    return loss_sum.item() / n, correct.item() / n


def check_interval(device: torch.device) -> int:
    """Steps between two reads of the loss by the divergence guard: reading forces a device sync,
    free on CPU, a pipeline stall on a GPU. (The first step, every full-batch step and every
    epoch's summed loss are checked whatever this says.)"""
    return 1 if device.type == "cpu" else 25


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


class Trainer:
    """The state of one run while it trains: `run()` appends the history rows; `state_dict()`
    and `load_state_dict()` carry everything a resumed run needs (plain dicts and tensors)."""

    # the counters a checkpoint carries besides the module, optimizer and RNG states
    COUNTERS = ("steps", "samples", "train_s", "eval_s", "start_loss", "time_to_target_s",
                "grad_norm_rows", "compile_s", "compile_samples")

    def __init__(self, spec: RunSpec, data: DeviceData, *, stacked: bool = False,
                 group: RankGroup | None = None) -> None:
        """`stacked`: the run trains as a member of an ensemble (train/ensemble.py); `group`:
        as one rank of a data-parallel run (train/distributed.py)."""
        self.spec, self.data, self.device = spec, data, data.device
        self.group = group
        channels, size, _ = data.shape
        self.precision = spec.train.get("precision") or "fp32"
        self.dtype = param_dtype(self.precision)  # float64 weights, inputs and sums for fp64
        torch.manual_seed(spec.seed)  # weights and dropout
        self.model = create_model(spec.model, in_channels=channels, num_classes=data.num_classes,
                                  image_size=size, **spec.model_kwargs).to(self.device, self.dtype)
        if group is not None:
            self.model = group.prepare(self.model)
        self.optimizer = create_optimizer(spec.optimizer_name, self.model.parameters(),
                                          **spec.hparams)
        self.channels_last = resolve_channels_last(spec.train.get("channels_last"), self.device,
                                                   self.model, self.precision, stacked=stacked)
        self.tf32 = use_cuda_defaults(self.device, spec.train.get("tf32"))
        self.graphs = False  # whether its steps replay a CUDA graph (the ensemble sets it)
        self.compile = bool(spec.train.get("compile"))
        module = self.model
        if group is not None:  # NHWC before DDP lays out its gradient buckets
            module = group.wrap(prepare_model(module, channels_last=self.channels_last))
        self.net = prepare_model(module, channels_last=self.channels_last and group is None,
                                 compile=self.compile, dynamic_batch=True)
        # the first step of a compiled model in this process compiles it: timed apart
        self.compile_pending = self.compile
        self.compile_s, self.compile_samples = 0.0, 0
        self.scaler = grad_scaler(self.device, self.precision)
        n = len(data.train)
        self.full_batch = spec.batch_size == "full"
        self.batch_size = n if self.full_batch else min(int(spec.batch_size), n)
        # graphs: true trains on whole batches only (a captured step has one shape)
        self.drop_last = bool(spec.train.get("graphs"))
        self.steps_per_epoch = (n // self.batch_size if self.drop_last
                                else math.ceil(n / self.batch_size))
        self.epoch_samples = self.steps_per_epoch * self.batch_size if self.drop_last else n
        if group is not None:
            dropped = rank_dropped(n, self.batch_size, group.world_size)
            self.steps_per_epoch -= bool(dropped)
            self.epoch_samples = n - dropped
        self.deadline: float | None = None  # perf_counter time: a data-parallel run's time limit
        self.scheduler = create_schedule(spec.train["schedule"], self.optimizer,
                                         epochs=spec.train["epochs"],
                                         steps_per_epoch=self.steps_per_epoch,
                                         batch_size=self.batch_size)
        # the lr the latest optimizer step used (before any step: the one the first will use)
        self.lr_used = self.optimizer.param_groups[0]["lr"]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(spec.seed)
        self.check_every = check_interval(self.device)
        self.start_loss: float | None = None
        self.steps = self.samples = 0
        self.train_s = self.eval_s = 0.0
        self.time_to_target_s: float | None = None
        self.timer = StepTimer(self.device) if "time" in spec.probes else NullTimer()
        self.machine = MachineProbe(self.device)  # what the training loop got of the machine
        self.grad_norm_rows: list[dict[str, Any]] | None = (
            [] if "grad_norms" in spec.probes else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.net(to_layout(x.to(self.dtype), self.channels_last))

    def step(self, x: torch.Tensor, y: torch.Tensor, global_batch: int | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns the summed loss and the correct count, on the device.
        `global_batch`: a data-parallel rank's step on its slice of a batch of that size."""
        out: dict[str, torch.Tensor] = {}

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            if self.full_batch:
                return self._full_batch_gradient(x, y, out)
            logits = self.forward(x)
            if global_batch is None:
                loss = loss_fn(logits, y)
                out["loss_sum"] = loss.detach() * len(y)
            else:  # DDP averages over ranks: this makes it the global batch's mean's gradient
                summed = loss_fn(logits, y, "sum")
                out["loss_sum"] = summed.detach()
                loss = summed * (self.group.world_size / global_batch)
            self._backward(loss)
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

    def _take_step(self, x, y, global_batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """`step(x, y)`, told the global batch where this is one rank's slice of it."""
        return self.step(x, y) if global_batch is None else self.step(x, y, global_batch)

    def _full_batch_gradient(self, x: torch.Tensor, y: torch.Tensor,
                             out: dict[str, torch.Tensor]) -> torch.Tensor:
        """∇L = 1/n Σ ∇loss_i, accumulated over chunks that fit in memory."""
        n, chunk = len(y), self.spec.train["eval_batch_size"]
        loss_sum = torch.zeros((), device=self.device, dtype=self.dtype)
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
        """Stop a diverging run: the loss read on the first step (its start), every full-batch
        step and every `check_every`-th. A data-parallel run reads the global batch's loss, and
        there, and only there, any rank's stop signal or time limit stops every rank."""
        if not self.guard_due():
            return
        if self.group is None:
            self.check_loss(loss_sum.item() / batch, f"at step {self.steps}")
            return
        late = self.deadline is not None and time.perf_counter() > self.deadline
        loss, (stop, timed_out) = self.group.agree(loss_sum, bool(signals.stop_requested()), late)
        if stop:
            raise signals.Interrupted(f"stopped by {signals.stop_requested() or 'a signal'}")
        if timed_out:
            raise TimedOut(f"run stopped after train.time_limit_s="
                           f"{self.spec.train['time_limit_s']:g} s")
        self.check_loss(loss / batch, f"at step {self.steps}")

    def guard_due(self) -> bool:
        """Whether the guard reads the loss of the step just taken."""
        return self.steps == 1 or self.full_batch or self.steps % self.check_every == 0

    def check_loss(self, loss: float, when: str) -> None:
        if self.start_loss is None:
            self.start_loss = loss
        if not math.isfinite(loss):
            raise Diverged(f"loss became {loss} {when}")
        if loss > self.spec.train["divergence_factor"] * self.start_loss:
            raise Diverged(f"loss {loss:.4g} {when} exceeds "
                           f"{self.spec.train['divergence_factor']:g}× its start "
                           f"{self.start_loss:.4g}")

    def train_epoch(self) -> tuple[float, float]:
        self.model.train()
        loss_sum = torch.zeros((), device=self.device, dtype=self.dtype)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        if self.full_batch:
            batches = iter([(self.data.normalize(self.data.train.x), self.data.train.y, None)])
        elif self.group is not None:
            batches = self.data.rank_batches(self.batch_size, self.generator, self.group.rank,
                                             self.group.world_size)
        else:
            batches = ((x, y, None) for x, y in self.data.train_batches(
                self.batch_size, self.generator, drop_last=self.drop_last))
        start = time.perf_counter()
        self.machine.start()
        try:
            self.timer.data_start()
            for x, y, global_batch in batches:
                self.timer.compute_start()
                if self.compile_pending:
                    seconds, (step_loss, step_correct) = self._compile_step(x, y, global_batch)
                    start += seconds  # compile_s, not train_s
                else:
                    step_loss, step_correct = self._take_step(x, y, global_batch)
                self._after_step(step_loss, step_correct, global_batch or len(y), loss_sum,
                                 correct)
        finally:  # a run stopped mid-epoch (diverged, timeout, signal) keeps its partial epoch
            _synchronize(self.device)
            self.machine.stop()
            self.train_s += time.perf_counter() - start
            self.timer.epoch_end()
        if self.group is not None:
            loss_sum, correct = self.group.sum(loss_sum, correct)
        n = self.epoch_samples
        epoch_loss = loss_sum.item() / n
        # the steps between two guard reads are not lost: their NaN is in the epoch's sum
        self.check_loss(epoch_loss, f"(the epoch's mean) by step {self.steps}")
        return epoch_loss, correct.item() / n

    def _after_step(self, step_loss: torch.Tensor, step_correct: torch.Tensor, batch: int,
                    loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        self.steps += 1
        self.samples += batch
        self.guard(step_loss, batch)
        if self.steps == 1 and self.grad_norm_rows is not None:
            self.record_grad_norms(0)  # the gradient at initialisation
        if self.group is None:  # a data-parallel run's ranks stop together, in `guard`
            signals.check()  # a stop signal ends the run here, between two steps
        loss_sum += step_loss
        correct += step_correct
        self.timer.data_start()  # also the end of this step

    def _compile_step(self, x: torch.Tensor, y: torch.Tensor, global_batch: int | None
                      ) -> tuple[float, tuple[torch.Tensor, torch.Tensor]]:
        """The step that compiles the model, timed alone as `compile_s` and its samples counted
        apart, so that train_s, samples/s and MFU measure the compiled model; returns its
        seconds and the step's outputs."""
        self.compile_pending = False
        _synchronize(self.device)
        begin = time.perf_counter()
        outputs = self._take_step(x, y, global_batch)
        _synchronize(self.device)
        seconds = time.perf_counter() - begin
        self.compile_s += seconds
        self.compile_samples += len(y)
        return seconds, outputs

    def record_grad_norms(self, epoch: int) -> None:
        """Per-parameter norms of the last step's gradient."""
        self.grad_norm_rows += [{"run_id": self.spec.run_id, "epoch": epoch, "step": self.steps,
                                 **row} for row in grad_norms(self.model)]

    def evaluate_row(self, epoch: int, train_loss: float, train_acc: float,
                     scores: tuple[float, float, float, float] | None = None) -> dict[str, Any]:
        """The history row after `epoch`; `scores` (val loss, val acc, test loss, test acc) when
        the caller evaluated the model already (an ensemble evaluates its members at once)."""
        start = time.perf_counter()
        batch = self.spec.train["eval_batch_size"]
        if scores is None and self.group is not None and not self.group.is_main:
            scores = (math.nan,) * 4  # rank 0 evaluates and writes the row
        elif scores is None:
            # a data-parallel run's rank 0 evaluates its own module: DDP's forward would wait
            # for the other ranks
            net = self.net if self.group is None else self.model
            with autocast(self.device, self.precision):
                scores = (*evaluate(net, self.data, self.data.val, batch, self.dtype),
                          *evaluate(net, self.data, self.data.test, batch, self.dtype))
        val_loss, val_acc, test_loss, test_acc = scores
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

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly as if the run had never stopped."""
        return {
            "device_type": self.device.type,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(self.device)
                         if self.device.type == "cuda" else None),
            "data_rng": self.generator.get_state(),
            "counters": {k: getattr(self, k) for k in self.COUNTERS},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict()`; one saved on another device type cannot be restored (its
        generator states do not transfer): `DeviceMismatch`."""
        saved = state.get("device_type", "cpu")
        if saved != self.device.type:
            raise DeviceMismatch(f"the checkpoint was written on {saved}, this run is on "
                                 f"{self.device.type}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if self.device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.generator.set_state(state["data_rng"])
        for key, value in state["counters"].items():
            setattr(self, key, value)
