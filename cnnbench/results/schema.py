"""The shape of results, defined once: run statuses, the `runs` row (`RunRow`: identity,
hyper-parameters, environment and the engine's `RunOutcome`), the `history` and `grad_norms`
columns, and what a suite's execution came to (`SuiteOutcome`)."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

# 1: one file per run, history rows as columns, the `runs` row as JSON in the parquet metadata.
# 2: `runs`, `history` and `grad_norms` are separate tables of typed columns (README, "Results").
SCHEMA_VERSION = 2


class Status(str, enum.Enum):
    """How a run ended. A `str` enum: rows and files hold the plain strings."""

    OK = "ok"
    DIVERGED = "diverged"  # the loss went non-finite or exploded: a finding about its lr
    ERROR = "error"
    OOM = "oom"
    TIMEOUT = "timeout"
    INTERRUPTED = "interrupted"  # a stop signal ended it; re-running resumes from its checkpoint

    def __str__(self) -> str:
        return self.value


SUCCEEDED = frozenset({Status.OK, Status.DIVERGED})  # the suite succeeded if every run did
FAILED = frozenset({Status.ERROR, Status.OOM, Status.TIMEOUT})  # retried by --rerun-failed
DONE = SUCCEEDED | FAILED  # not interrupted: that one resumes

# where a run of a suite stands, as `cnnbench status` counts it (results/status.py)
SUITE_STATES = ("done", "failed", "interrupted", "pending")

METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")

_S, _F, _I, _B = pa.string(), pa.float64(), pa.int64(), pa.bool_()
WRITTEN_AT = pa.timestamp("us", tz="UTC")

# Every documented `runs` column: name → (parquet type, unit or meaning), in column order. The
# store writes each of them, null where a run has no value. Further columns: one `hp_<key>` per
# resolved optimizer hyper-parameter (numbers float64, flags bool, others JSON strings).
RUN_COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "suite": (_S, "the suite's name"),
    "run_id": (_S, "12 hex digits: hash of the fully resolved run"),
    "model": (_S, "model name"),
    "model_kwargs": (_S, "JSON: the model's options"),
    "optimizer": (_S, "optimizer label (as in the suite)"),
    "optimizer_name": (_S, "registered optimizer"),
    "lr": (_F, "learning rate of the grid"),
    "seed": (_I, "seed"),
    "batch": (_S, "batch size as written in the suite (a number or 'full')"),
    "batch_size": (_I, "batch size in samples ('full' resolved)"),
    "dataset": (_S, "dataset name"),
    "requested_device": (_S, "device the suite asked for"),
    "epochs": (_I, "epochs asked for"),
    "schedule": (_S, "JSON: the lr schedule"),
    "round": (_I, "the lr-search round that proposed the run (1 for a plain grid)"),
    "hparams": (_S, "JSON: every optimizer hyper-parameter used"),
    "device": (_S, "device the run used"),
    "execution": (_S, "sequential | ensemble | distributed: trained alone, as a vectorized "
                      "ensemble member, or data-parallel over several processes"),
    "ensemble_size": (_I, "runs trained together (1: alone)"),
    "world_size": (_I, "processes a data-parallel run trained on (null: one)"),
    "rank_batch_size": (_I, "samples of each global batch one process trained on"),
    "sync_bn": (_B, "BatchNorm statistics synchronised over the processes (SyncBatchNorm)"),
    "cnnbench_version": (_S, "the cnnbench that ran it"),
    "torch_version": (_S, ""), "cuda_version": (_S, ""), "python_version": (_S, ""),
    "host": (_S, ""), "git_commit": (_S, ""), "device_name": (_S, "GPU or CPU name"),
    "torch_threads": (_I, "intra-op threads"),
    "status": (_S, "ok | diverged | error | oom | timeout | interrupted"),
    "message": (_S, "why a run did not end ok"),
    "epochs_done": (_I, "epochs completed"),
    "resumed_from_epoch": (_I, "checkpoint epoch it resumed from"),
    "steps": (_I, "optimizer steps"),
    "samples": (_I, "training samples seen"),
    **{m: (_F, "fraction in [0, 1]" if m.endswith("acc") else "nats") for m in METRICS},
    "best_val_acc": (_F, "fraction"), "best_val_loss": (_F, "nats"),
    "wall_s": (_F, "s"), "train_s": (_F, "s"), "eval_s": (_F, "s"), "s_per_epoch": (_F, "s"),
    "samples_per_s": (_F, "samples/s"), "time_to_target_s": (_F, "s (null: never reached)"),
    "params": (_I, "parameters"),
    "train_size": (_I, "samples"), "val_size": (_I, "samples"), "test_size": (_I, "samples"),
    "start_time": (_F, "Unix time, s"), "end_time": (_F, "Unix time, s"),
    # probes (README, "Probes"): null where the probe was off
    "precision": (_S, "fp32 | bf16 | fp16 | fp64"),
    "channels_last": (_B, "trained in NHWC layout (default on CUDA for conv nets alone)"),
    "tf32": (_B, "TF32 tensor cores for fp32 matmuls and convolutions (null off CUDA)"),
    "cudnn_benchmark": (_B, "cuDNN autotuned each input shape (null off CUDA)"),
    "graphs": (_B, "training steps replayed from a captured CUDA graph"),
    "dropped_per_epoch": (_I, "samples of each epoch not trained (graphs: true drops the last, "
                              "smaller batch)"),
    # what the run got of the machine (train/machine.py)
    "timing": (_S, "clean | contended: whether the run shared the machine while it trained"),
    "timing_reason": (_S, "why contended"),
    "cpu_s": (_F, "process CPU time over the training loop, all threads (s)"),
    "cpu_share": (_F, "cpu_s / (training-loop wall time × torch threads): 1 = a core each"),
    "load_start": (_F, "the machine's 1-minute load average at the run's start"),
    "load_end": (_F, "the machine's 1-minute load average at the run's end"),
    "logical_cpus": (_I, "logical CPUs of the machine"),
    "gpu_other_processes": (_I, "other processes on the run's GPU (NVML; null where unknown)"),
    "gpu_other_bytes": (_I, "GPU memory those processes held (bytes)"),
    "compile_s": (_F, "s spent compiling (compile: true)"),
    "loss_scale": (_F, "fp16 loss scale at the end"),
    "step_ms_median": (_F, "ms"), "step_ms_p90": (_F, "ms"), "data_ms_median": (_F, "ms"),
    "compute_ms_median": (_F, "ms"), "data_s": (_F, "s"), "steps_s": (_F, "s"),
    "warmup_steps": (_I, "steps"),
    "warmup_s": (_F, "s"),
    "peak_cuda_allocated_bytes": (_I, "bytes"), "peak_cuda_reserved_bytes": (_I, "bytes"),
    "cuda_baseline_bytes": (_I, "bytes allocated before the run"),
    "peak_rss_bytes": (_I, "bytes"), "param_bytes": (_I, "bytes"), "grad_bytes": (_I, "bytes"),
    "optimizer_state_bytes": (_I, "bytes"),
    "data_bytes": (_I, "bytes of the dataset on the device"),
    "flops_per_sample": (_I, "FLOPs (forward)"), "train_flops_per_step": (_I, "FLOPs"),
    "peak_flops_per_s": (_F, "FLOP/s"), "achieved_flops_per_s": (_F, "FLOP/s"),
    "mfu": (_F, "fraction"),
    "schema_version": (_I, "version of this layout"),
    "written_at": (WRITTEN_AT, "when the row was written; the newest row of a run_id wins"),
}

HISTORY_TYPES: dict[str, pa.DataType] = {
    "run_id": _S, "epoch": _I, "step": _I, "samples": _I, "elapsed_s": _F, "lr": _F,
    **dict.fromkeys(METRICS, _F)}
HISTORY_COLUMNS = list(HISTORY_TYPES)
# on disk only: the run's identity, so common plots need no join, and its row's written_at
HISTORY_EXTRA_TYPES: dict[str, pa.DataType] = {
    "model": _S, "optimizer": _S, "run_lr": _F, "seed": _I, "written_at": WRITTEN_AT}
GRAD_NORM_TYPES: dict[str, pa.DataType] = {
    "run_id": _S, "epoch": _I, "step": _I, "layer": _S, "ndim": _I, "grad_norm": _F,
    "written_at": WRITTEN_AT}
GRAD_NORM_COLUMNS = [c for c in GRAD_NORM_TYPES if c != "written_at"]


@dataclass(frozen=True)
class RunOutcome:
    """What training one run produced, as `runs` columns (README, "Results"); a run that failed
    before or during training keeps the defaults: NaN metrics, zero counts."""

    status: Status
    message: str = ""
    epochs_done: int = 0
    resumed_from_epoch: int | None = None
    steps: int = 0
    samples: int = 0
    train_loss: float = math.nan
    train_acc: float = math.nan
    val_loss: float = math.nan
    val_acc: float = math.nan
    test_loss: float = math.nan
    test_acc: float = math.nan
    best_val_acc: float = math.nan
    best_val_loss: float = math.nan
    wall_s: float = math.nan
    train_s: float = math.nan
    eval_s: float = math.nan
    s_per_epoch: float = math.nan
    samples_per_s: float = math.nan
    time_to_target_s: float | None = None
    params: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    test_size: int | None = None
    start_time: float | None = None
    end_time: float | None = None
    # the probes' columns (README, "Probes"): only those the suite switched on
    probes: dict[str, Any] = field(default_factory=dict)
    # every hyper-parameter the optimizer used, torch's own defaults included (None: unknown)
    optimizer_hparams: dict[str, Any] | None = None
    grad_norms: list[dict[str, Any]] | None = None  # the grad_norms probe's rows, own table

    def columns(self) -> dict[str, Any]:
        """The outcome's flat `runs` columns (hyper-parameters and gradient norms excluded)."""
        row = asdict(self)
        for key in ("probes", "optimizer_hparams", "grad_norms"):
            row.pop(key)
        row["status"] = str(self.status)
        return {**row, **self.probes}


def hparam_columns(hparams: dict[str, Any]) -> dict[str, Any]:
    """`hparams` as one JSON column and one `hp_<key>` column per hyper-parameter."""
    return {
        "hparams": json.dumps(hparams, sort_keys=True, default=str),
        **{f"hp_{k}": v if isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str)
           for k, v in hparams.items() if k != "lr" and v is not None},
    }


@dataclass(frozen=True)
class RunRow:
    """One `runs` row as the store writes it: who the run is, where it ran, what it produced."""

    identity: dict[str, Any]  # suite, run_id, model, optimizer, lr, seed, … (RunSpec.row())
    hparams: dict[str, Any]
    device: str
    environment: dict[str, Any]
    outcome: RunOutcome
    batch_size: int  # "full" resolved to the training set's size
    # how it trained: alone ("sequential") or as one member of a vectorized "ensemble" of
    # `ensemble_size` runs (train/ensemble.py); nothing else in the row differs
    execution: str = "sequential"
    ensemble_size: int = 1

    @property
    def run_id(self) -> str:
        return self.identity["run_id"]

    @property
    def status(self) -> Status:
        return self.outcome.status

    def record(self) -> dict[str, Any]:
        """The flat row, in the documented column order."""
        return {**self.identity, **hparam_columns(self.hparams), "device": self.device,
                "execution": self.execution, "ensemble_size": self.ensemble_size,
                **self.environment, **self.outcome.columns(), "batch_size": self.batch_size,
                "schema_version": SCHEMA_VERSION}


@dataclass(frozen=True)
class SuiteOutcome:
    """What executing a suite came to: runs trained now, runs skipped as done, status counts."""

    out: Path
    ran: int
    skipped: int
    statuses: dict[str, int]
    interrupted: bool = False  # a stop signal ended the suite early

    @property
    def succeeded(self) -> bool:
        """Every run ended ok or diverged."""
        return set(self.statuses) <= {str(s) for s in SUCCEEDED}
