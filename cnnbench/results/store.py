"""Results on disk: one parquet file per run, written atomically (temp file + rename).

`<out>/runs/<run_id>.parquet` holds the run's history rows; its summary row travels in the
same file as JSON in the parquet metadata, so a run is either wholly there or not at all.
The opt-in `grad_norms` probe's rows travel the same way, as a second metadata entry holding
columnar JSON (run_id, epoch, step, layer, grad_norm): still one atomic file per run.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from cnnbench.errors import CnnbenchError
from cnnbench.results.schema import (
    DONE,
    GRAD_NORM_COLUMNS,
    HISTORY_COLUMNS,
    SCHEMA_VERSION,
    RunRow,
)

SUMMARY_KEY = b"cnnbench.summary"
GRAD_NORMS_KEY = b"cnnbench.grad_norms"


class WriteError(CnnbenchError):
    """A result or checkpoint could not be written (full disk, vanished folder): the suite stops."""


def atomic_write(target: Path, write: Callable[[BinaryIO], object], what: str, advice: str,
                 *, keep_existing: bool = False) -> bool:
    """Write `target` through a temp file beside it, fsync and rename: all of it or nothing.
    With `keep_existing`, a target already there (another process's) is kept: the first
    writer wins. Returns whether this call wrote it.

    A failure leaves no temp file; an OSError (full disk, vanished folder) becomes a WriteError
    "`what`: <reason>. `advice`"."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if not keep_existing:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)  # unlike a rename, a link never replaces an existing file
        except FileExistsError:
            return False
        finally:
            Path(tmp).unlink()
        return True
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise WriteError(f"{what}: {exc.strerror or exc}. {advice}") from None
        raise


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else str(value)
    return value


class ResultStore:
    """The results folder of one suite."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.runs_dir = self.root / "runs"

    def path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.parquet"

    def checkpoint_path(self, run_id: str) -> Path:
        """Where the run's per-epoch checkpoint lives while it is unfinished."""
        return self.root / "checkpoints" / f"{run_id}.pt"

    def prepare(self) -> None:
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.runs_dir, prefix=".write-test-")
            probe.close()
        except OSError as exc:
            raise CnnbenchError(f"cannot write results to {str(self.root)!r}: {exc.strerror}; "
                                "choose another folder with --out") from None

    def write_row(self, row: RunRow, history: list[dict[str, Any]]) -> Path:
        """Write one run's row, its history and its gradient norms, as one file."""
        return self.write(row.record(), history, grad_norms=row.outcome.grad_norms)

    def write(self, summary: dict[str, Any], history: list[dict[str, Any]], *,
              grad_norms: list[dict[str, Any]] | None = None) -> Path:
        """Write a flat `runs` record and its history rows (tests and tools build them)."""
        table = pa.Table.from_pylist(history) if history else pa.table(
            {c: pa.array([], pa.float64()) for c in HISTORY_COLUMNS})
        summary = {**summary, "schema_version": SCHEMA_VERSION}
        meta = {SUMMARY_KEY: json.dumps({k: _jsonable(v) for k, v in summary.items()},
                                        default=str).encode()}
        if grad_norms is not None:
            columns = {c: [_jsonable(row[c]) for row in grad_norms] for c in GRAD_NORM_COLUMNS}
            meta[GRAD_NORMS_KEY] = json.dumps(columns).encode()
        table = table.replace_schema_metadata(meta)
        target = self.path(summary["run_id"])
        atomic_write(target, lambda f: pq.write_table(table, f),
                     f"cannot write the result of run {summary['run_id']} to {str(target)!r}",
                     "No partial file was left; free space or restore the folder, then run the "
                     "suite again to resume")
        return target

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        path = self.path(run_id)
        if not path.exists():
            return None
        return _summary(pq.read_schema(path).metadata)

    def statuses(self) -> dict[str, str]:
        """run_id → status of every run that has a result file, interrupted ones included."""
        out = {}
        for path in self.runs_dir.glob("*.parquet"):
            try:
                summary = _summary(pq.read_schema(path).metadata)
            except (OSError, pa.ArrowInvalid):
                continue  # a foreign or damaged file: treat its run as not done
            if "run_id" in summary:
                out[summary["run_id"]] = summary.get("status")
        return out

    def finished_ids(self) -> dict[str, str]:
        """run_id → status of every run that has a result file (interrupted ones excluded)."""
        return {k: v for k, v in self.statuses().items() if v in DONE}


def _summary(metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    return json.loads((metadata or {}).get(SUMMARY_KEY, b"{}"))


def _result_files(path: str | Path) -> list[Path]:
    runs_dir = ResultStore(path).runs_dir
    if not runs_dir.is_dir():
        raise CnnbenchError(f"no results in {str(path)!r} (expected a folder with runs/ inside, "
                            "as written by `cnnbench run --out`)")
    return sorted(runs_dir.glob("*.parquet"))


def load_results(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy `runs` (one row per run) and `history` (one row per evaluation) DataFrames."""
    summaries, histories = [], []
    for file in _result_files(path):
        try:
            table = pq.read_table(file)
        except (OSError, pa.ArrowInvalid):
            continue  # being replaced right now, or damaged: never half-read
        summaries.append(_summary(table.schema.metadata))
        histories.append(table.to_pandas())
    runs = pd.DataFrame(summaries)
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(
        columns=HISTORY_COLUMNS)
    return runs, history


def load_grad_norms(path: str | Path) -> pd.DataFrame:
    """The `grad_norms` probe's tidy table (run_id, epoch, step, layer, ndim, grad_norm) of a
    results folder; empty where no run had the probe on. Epoch 0 holds the first step's
    gradient; within a run and epoch, layers keep the model's parameter order."""
    frames = []
    for file in _result_files(path):
        try:
            metadata = pq.read_schema(file).metadata or {}
        except (OSError, pa.ArrowInvalid):
            continue
        if GRAD_NORMS_KEY in metadata:
            frames.append(pd.DataFrame(json.loads(metadata[GRAD_NORMS_KEY])))
    if not frames:
        return pd.DataFrame(columns=GRAD_NORM_COLUMNS)
    table = pd.concat(frames, ignore_index=True)
    table["grad_norm"] = table["grad_norm"].astype(float)  # null (a NaN norm) → NaN
    return table
