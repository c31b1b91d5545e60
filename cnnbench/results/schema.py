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

SCHEMA_VERSION = 1


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

HISTORY_COLUMNS = ["run_id", "epoch", "step", "samples", "elapsed_s", "lr", "train_loss",
                   "train_acc", "val_loss", "val_acc", "test_loss", "test_acc"]
GRAD_NORM_COLUMNS = ["run_id", "epoch", "step", "layer", "ndim", "grad_norm"]
METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


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
