"""Results on disk (README, "Results"): a folder of parquet tables, written atomically.

    <out>/cnnbench-results.json        {"schema_version": 2}
    <out>/runs/<run_id>.parquet        one run's `runs` row (a run is done when its row exists)
    <out>/history/<run_id>-<t>.parquet that run's history rows
    <out>/grad_norms/<run_id>-<t>.parquet  the grad_norms probe's rows, where it was on
    <out>/{runs,history,grad_norms}/compacted-<t>.parquet   many runs, folded by `compact`

One writer per run: history and gradient norms first, the `runs` row last, each through a
temp file and a rename, so a killed writer leaves either the whole run or a run that is not
done (its history file, named by the row's `written_at` t, is ignored). A run_id whose row is
in several files (re-run after compaction) counts once: the newest `written_at` wins.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cnnbench.errors import CnnbenchError
from cnnbench.results.files import (
    MARKER,
    TABLES,
    check_version,
    now_us,
    write_marker,
    write_parquet,
)
from cnnbench.results.loading import read_runs, warn_damaged
from cnnbench.results.schema import DONE, HISTORY_COLUMNS, SCHEMA_VERSION, RunRow
from cnnbench.results.tables import grad_norms_table, history_table, runs_table


class ResultStore:
    """The results folder of one suite."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.runs_dir = self.root / "runs"
        self.damaged: list[tuple[Path, str]] = []  # what the last `statuses()` could not read
        self.marked = False  # the version marker is there: written with the first row, so that
        # a suite that stops before its first run leaves no file behind

    def path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.parquet"

    def checkpoint_path(self, run_id: str) -> Path:
        """Where the run's per-epoch checkpoint lives while it is unfinished."""
        return self.root / "checkpoints" / f"{run_id}.pt"

    def prepare(self) -> None:
        check_version(self.root)
        try:
            for table in TABLES:
                (self.root / table).mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.runs_dir, prefix=".write-test-")
            probe.close()
        except OSError as exc:
            raise CnnbenchError(f"cannot write results to {str(self.root)!r}: {exc.strerror}; "
                                "choose another folder with --out") from None

    def write_row(self, row: RunRow, history: list[dict[str, Any]]) -> Path:
        """Write one run's row, its history and its gradient norms."""
        return self.write(row.record(), history, grad_norms=row.outcome.grad_norms)

    def write(self, summary: dict[str, Any], history: list[dict[str, Any]], *,
              grad_norms: list[dict[str, Any]] | None = None) -> Path:
        """Write a flat `runs` record and its history rows (tests and tools build them)."""
        run_id = summary["run_id"]
        old = self.path(run_id)
        stale = _written_at(old) if old.exists() else None
        record = {**summary, "schema_version": SCHEMA_VERSION, "written_at": now_us()}
        tag = f"{run_id}-{record['written_at']}.parquet"
        what = f"cannot write the result of run {run_id}"
        identity = {**record, "run_lr": record.get("lr")}
        if history:
            target = self.root / "history" / tag
            write_parquet(history_table(history, identity), target, f"{what} to {str(target)!r}")
        if grad_norms:
            target = self.root / "grad_norms" / tag
            write_parquet(grad_norms_table(grad_norms, record["written_at"]), target,
                          f"{what} to {str(target)!r}")
        if not self.marked and not (self.root / MARKER).exists():
            write_marker(self.root)
        self.marked = True
        write_parquet(runs_table([record]), old, f"{what} to {str(old)!r}")
        if stale is not None:  # the replaced row's history is now unreachable: drop it
            for table in ("history", "grad_norms"):
                (self.root / table / f"{run_id}-{stale}.parquet").unlink(missing_ok=True)
        return old

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        """The newest `runs` row of `run_id` as a dict, or None."""
        if not self.runs_dir.is_dir():
            return None
        table = read_runs(self.root).table
        rows = table.filter(pc.equal(table["run_id"], run_id)).to_pylist()
        return rows[0] if rows else None

    def read_history(self, run_id: str) -> pa.Table | None:
        """The history rows of the run just written (its loose files), or None."""
        stamp = _written_at(self.path(run_id))
        path = self.root / "history" / f"{run_id}-{stamp}.parquet"
        if stamp is None or not path.exists():
            return None
        return pq.read_table(path, columns=HISTORY_COLUMNS)

    def statuses(self) -> dict[str, str]:
        """run_id → status of every run that has a row, interrupted ones included. Files that
        cannot be read are kept in `damaged` (and warned about): their runs count as not done."""
        scan = read_runs(self.root, columns=["run_id", "status", "written_at"])
        self.damaged = scan.damaged
        warn_damaged(scan.damaged)
        return dict(zip(scan.table.column("run_id").to_pylist(),
                        scan.table.column("status").to_pylist(), strict=True))

    def finished_ids(self) -> dict[str, str]:
        """run_id → status of every run that has a row (interrupted ones excluded)."""
        return {k: v for k, v in self.statuses().items() if v in DONE}


def _written_at(path: Path) -> int | None:
    """The µs `written_at` of a loose `runs` file (None: version 1 or unreadable)."""
    try:
        file = pq.ParquetFile(path)
        if "written_at" not in file.schema_arrow.names:
            return None
        values = file.read(columns=["written_at"]).column(0).cast(pa.int64()).to_pylist()
    except (OSError, pa.ArrowInvalid):
        return None
    return values[0] if values else None
