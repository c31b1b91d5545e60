"""One run as a tracker sees it, from a `runs` row and its `history` rows: params (identity and
every resolved hyper-parameter, as strings), the final metrics and probes (numbers), tags, and
the evaluations as (metric, value, step) points. Pure: no tracker is imported here."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cnnbench.results.schema import DONE, FAILED, Status

# the `runs` columns that say which run it is (params), beside the hp_* columns
IDENTITY = ("model", "optimizer", "optimizer_name", "lr", "seed", "batch", "batch_size",
            "dataset", "epochs", "schedule", "device", "requested_device", "train_size",
            "val_size", "test_size")
TAGS = ("suite", "run_id", "status", "git_commit", "host", "device_name", "torch_version",
        "cuda_version", "python_version")
# numbers in a row that are neither a result nor a hyper-parameter
NOT_METRICS = frozenset({*IDENTITY, "torch_threads", "schema_version", "start_time", "end_time",
                         "resumed_from_epoch"})
HISTORY_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc",
                   "lr", "elapsed_s", "samples", "epoch")
PARAM_LIMIT = 6000  # MLflow's longest param value; longer JSON is cut (it stays in the row)


def _present(value: Any) -> bool:
    if value is None:
        return False
    try:
        return not pd.isna(value)
    except (TypeError, ValueError):  # a list or dict
        return True


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class RunRecord:
    """What every tracker logs of one run."""

    run_id: str
    name: str
    status: Status
    params: dict[str, str]
    metrics: dict[str, float]  # final metrics and probes
    tags: dict[str, str]
    points: list[tuple[str, float, int]]  # (metric, value, step), in step order
    start_ms: int | None
    end_ms: int | None

    @property
    def last_step(self) -> int:
        return max((step for _, _, step in self.points), default=0)

    def finals_not_in_history(self) -> dict[str, float]:
        """Final metrics the history does not already end with (test_acc, probes, times)."""
        seen = {key for key, _, _ in self.points}
        return {k: v for k, v in self.metrics.items() if k not in seen}


def run_name(row: dict[str, Any]) -> str:
    return f"{row['model']} {row['optimizer']} lr={row['lr']:g} seed={row['seed']}"


def params(row: dict[str, Any]) -> dict[str, str]:
    """Identity, model options (`model.<key>`) and every resolved hyper-parameter (`hp.<key>`)."""
    out = {k: str(row[k]) for k in IDENTITY if k in row and _present(row[k])}
    kwargs = row.get("model_kwargs")
    for key, value in (json.loads(kwargs) if isinstance(kwargs, str) else {}).items():
        out[f"model.{key}"] = json.dumps(value) if not isinstance(value, str) else value
    hparams = row.get("hparams")
    values = json.loads(hparams) if isinstance(hparams, str) else {
        k[3:]: v for k, v in row.items() if k.startswith("hp_") and _present(v)}
    for key, value in values.items():
        if key != "lr" and value is not None:
            out[f"hp.{key}"] = value if isinstance(value, str) else json.dumps(value)
    return {k: v[:PARAM_LIMIT] for k, v in out.items()}


def final_metrics(row: dict[str, Any]) -> dict[str, float]:
    """Every finite number of the row that is a result: metrics, times, memory, probes."""
    return {k: n for k, v in row.items()
            if k not in NOT_METRICS and not k.startswith("hp_") and (n := number(v)) is not None}


def tags(row: dict[str, Any]) -> dict[str, str]:
    out = {f"cnnbench.{k}": str(row[k]) for k in TAGS if k in row and _present(row[k])}
    if row.get("message"):
        out["cnnbench.message"] = str(row["message"])[:5000]
    return out


def points(history: pd.DataFrame) -> list[tuple[str, float, int]]:
    """Each evaluation's finite metrics, at its optimizer step."""
    out = []
    for point in history.sort_values("step").to_dict("records"):
        step = int(point["step"])
        out += [(key, n, step) for key in HISTORY_METRICS
                if (n := number(point.get(key))) is not None]
    return out


def _ms(seconds: Any) -> int | None:
    value = number(seconds)
    return None if value is None else int(value * 1000)


def record(row: dict[str, Any], history: pd.DataFrame) -> RunRecord:
    return RunRecord(run_id=str(row["run_id"]), name=run_name(row), status=Status(row["status"]),
                     params=params(row), metrics=final_metrics(row), tags=tags(row),
                     points=points(history), start_ms=_ms(row.get("start_time")),
                     end_ms=_ms(row.get("end_time")))


def records(runs: pd.DataFrame, history: pd.DataFrame) -> list[RunRecord]:
    """A record per run, in run_id order."""
    by_run = dict(tuple(history.groupby("run_id"))) if not history.empty else {}
    empty = history.iloc[0:0] if not history.empty else pd.DataFrame(columns=["step"])
    return [record(row, by_run.get(row["run_id"], empty))
            for row in runs.sort_values("run_id").to_dict("records")]


def finished_state(status: Status) -> str:
    """The run state trackers know: FINISHED, FAILED or KILLED (interrupted)."""
    if status in FAILED:
        return "FAILED"
    return "FINISHED" if status in DONE else "KILLED"
