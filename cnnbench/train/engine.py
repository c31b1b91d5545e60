"""Train one RunSpec to its `RunOutcome`: resume from a checkpoint when there is one, save one
after every epoch, stop on divergence, time limit or a stop signal, and collect the probes."""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from cnnbench.data import DeviceData
from cnnbench.models import count_parameters
from cnnbench.results.schema import METRICS, RunOutcome, Status
from cnnbench.suite import RunSpec
from cnnbench.train import signals
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.devices import device_name
from cnnbench.train.distributed import RankGroup
from cnnbench.train.flops import count_flops
from cnnbench.train.probes import (
    MemoryProbe,
    data_bytes,
    peak_flops_per_s,
    state_bytes,
    throughput,
)
from cnnbench.train.trainer import (  # noqa: F401  (re-exported)
    DeviceMismatch,
    Diverged,
    TimedOut,
    Trainer,
    loss_fn,
)


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its outcome (the `runs` columns) and its history rows."""

    outcome: RunOutcome
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def summary(self) -> dict[str, Any]:
        """The outcome as flat `runs` columns."""
        return self.outcome.columns()


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


def train(spec: RunSpec, data: DeviceData, on_epoch=None,
          checkpoint: Checkpoint | None = None, log=None,
          group: RankGroup | None = None) -> RunResult:
    """Train one run on data already on its device; divergence ends it early as `diverged`.

    With a `checkpoint`, the run resumes from it when there is one, and saves one after every
    epoch; a stop signal ends it as `interrupted`. A checkpoint from another device type is set
    aside and the run restarts (said through `log`). Other exceptions propagate: the executor
    records them as `error`. With `group`, this process is one rank of a data-parallel run:
    every rank resumes from the checkpoint, rank 0 saves it, and the times are the slowest
    rank's."""
    started = time.time()
    wall_start = time.perf_counter()
    memory = MemoryProbe(data.device)
    if "memory" in spec.probes:
        memory.start()
    trainer, resumed = resume_trainer(spec, data, checkpoint, log, group=group)
    history: list[dict[str, Any]] = list(resumed["history"]) if resumed is not None else []
    if resumed is not None:
        started, wall_start = resumed["start_time"], wall_start - resumed["wall_s"]

    def save(epoch: int) -> None:
        checkpoint.save({"epoch": epoch, "start_time": started, "history": history,
                         "wall_s": time.perf_counter() - wall_start,
                         "trainer": trainer.state_dict()})

    saves = checkpoint is not None and (group is None or group.is_main)
    limit = spec.train.get("time_limit_s")
    if group is not None and limit:  # the ranks stop together, at a step where they agree
        trainer.deadline, limit = time.perf_counter() + limit, None
    status, message = Status.OK, ""
    try:
        with time_limit(limit):
            trainer.run(history, on_epoch, after_epoch=save if saves else None)
    except signals.Interrupted as exc:
        done = len(history) - 1
        status, message = Status.INTERRUPTED, (f"{exc} during epoch {done + 1}; re-run to "
                                               f"resume after epoch {done}")
    except Diverged as exc:
        status, message = Status.DIVERGED, str(exc)
    except TimedOut as exc:
        status, message = Status.TIMEOUT, str(exc)
    outcome = build_outcome(spec, data, trainer, history, status=status, message=message,
                            resumed=resumed, started=started,
                            wall_s=time.perf_counter() - wall_start, memory=memory)
    return RunResult(outcome if group is None else slowest_rank(outcome, trainer, group),
                     history)


def slowest_rank(outcome: RunOutcome, trainer: Trainer, group: RankGroup) -> RunOutcome:
    """A data-parallel run's outcome with the slowest rank's times (every rank waits for it at
    each all-reduce, so its times are the run's) and the samples of all ranks per second."""
    epochs = outcome.epochs_done
    per_epoch = outcome.s_per_epoch * epochs if epochs else 0.0
    wall_s, train_s, eval_s, epochs_s = group.slowest(outcome.wall_s, outcome.train_s,
                                                      outcome.eval_s, per_epoch)
    counted = trainer.samples - trainer.compile_samples
    return replace(outcome, wall_s=wall_s, train_s=train_s, eval_s=eval_s,
                   s_per_epoch=epochs_s / epochs if epochs else math.nan,
                   samples_per_s=counted / train_s if train_s else math.nan,
                   probes={**outcome.probes, "world_size": group.world_size,
                           "rank_batch_size": trainer.batch_size // group.world_size,
                           "sync_bn": group.sync_bn})


def build_outcome(spec: RunSpec, data: DeviceData, trainer: Trainer,
                  history: list[dict[str, Any]], *, status: Status, message: str,
                  resumed: dict[str, Any] | None, started: float, wall_s: float,
                  memory: MemoryProbe) -> RunOutcome:
    """The `runs` columns of a run that trained (or started to) with `trainer`."""
    epochs_done = max(0, len(history) - 1)
    final = history[-1] if history else {}
    val_accs = [r["val_acc"] for r in history[1:] if not math.isnan(r["val_acc"])]
    val_losses = [r["val_loss"] for r in history[1:] if not math.isnan(r["val_loss"])]
    return RunOutcome(
        status=status,
        message=message,
        epochs_done=epochs_done,
        resumed_from_epoch=resumed["epoch"] if resumed is not None else None,
        steps=trainer.steps,
        samples=trainer.samples,
        **{k: final.get(k, math.nan) for k in METRICS},
        best_val_acc=max(val_accs) if val_accs else math.nan,
        best_val_loss=min(val_losses) if val_losses else math.nan,
        wall_s=wall_s,
        train_s=trainer.train_s,
        eval_s=trainer.eval_s,
        # the whole epochs' time (train_s at the last evaluation), not a stopped run's partial one
        s_per_epoch=final["elapsed_s"] / epochs_done if epochs_done else math.nan,
        # the compiling step is timed apart (compile_s): neither its time nor its samples count
        samples_per_s=(trainer.samples - trainer.compile_samples) / trainer.train_s
        if trainer.train_s else math.nan,
        time_to_target_s=trainer.time_to_target_s,
        params=count_parameters(trainer.model),
        train_size=len(data.train),
        val_size=len(data.val) if data.val is not None else 0,
        test_size=len(data.test),
        start_time=started,
        end_time=time.time(),
        probes=_probe_columns(spec, data, trainer, memory),
        optimizer_hparams=dict(trainer.optimizer.defaults),
        grad_norms=trainer.grad_norm_rows,
    )


def resume_trainer(spec: RunSpec, data: DeviceData, checkpoint: Checkpoint | None,
                   log, *, stacked: bool = False, group: RankGroup | None = None
                   ) -> tuple[Trainer, dict[str, Any] | None]:
    """A fresh trainer, or one restored from the run's checkpoint (returned too); a checkpoint
    from another device type is set aside, and `log` says so. `stacked`: an ensemble's;
    `group`: a data-parallel rank's."""
    trainer = Trainer(spec, data, stacked=stacked, group=group)
    resumed = checkpoint.load() if checkpoint is not None else None
    if resumed is None:
        return trainer, None
    try:
        trainer.load_state_dict(resumed["trainer"])
    except DeviceMismatch as exc:
        if log is not None:
            log(f"  {exc}: restarting run {spec.run_id} from epoch 0")
        return Trainer(spec, data, stacked=stacked, group=group), None
    return trainer, resumed


def _probe_columns(spec: RunSpec, data: DeviceData, trainer: Trainer,
                   memory: MemoryProbe) -> dict[str, Any]:
    """The `runs` columns of the probes the suite switched on (see README, "Probes")."""
    columns: dict[str, Any] = {
        "precision": trainer.precision, "channels_last": trainer.channels_last,
        "tf32": trainer.tf32, "cudnn_benchmark": True if data.device.type == "cuda" else None,
        "graphs": trainer.graphs,
        "dropped_per_epoch": len(data.train) - trainer.epoch_samples,
        **trainer.machine.columns()}
    if trainer.compile:
        columns["compile_s"] = trainer.compile_s
    if trainer.scaler is not None:  # fp16: where the loss scale ended (65536 at the start)
        columns["loss_scale"] = float(trainer.scaler.get_scale())
    if "time" in spec.probes:
        columns.update(trainer.timer.summary())
    if "memory" in spec.probes:
        columns.update(memory.summary())
        columns["data_bytes"] = data_bytes(data)
        columns.update(state_bytes(trainer.model, trainer.optimizer))
    if "flops" in spec.probes:
        try:  # bounded like training: a model that hung there would hang here too
            with time_limit(spec.train.get("time_limit_s")):
                forward, training = count_flops(trainer.model, data.shape)
        except Exception:  # a user model that cannot run on meta tensors: FLOPs stay unknown
            forward = training = None
        peak = peak_flops_per_s(device_name(data.device), trainer.precision)
        columns.update({
            "flops_per_sample": forward,
            "train_flops_per_step": training and training * trainer.batch_size,
            "peak_flops_per_s": peak,
            # all of train_s: warm-up and data waits included, like samples_per_s
            **throughput(training and training * (trainer.samples - trainer.compile_samples),
                         trainer.train_s, peak)})
    return columns
