"""Results on disk (README, "Results"): a folder of parquet tables, written atomically.

    <out>/cnnbench-results.json                  {"schema_version": 2}
    <out>/runs/part-<token>-<pid>.parquet         the `runs` rows one writer committed
    <out>/history/part-<token>-<pid>.parquet      their history rows
    <out>/grad_norms/part-<token>-<pid>.parquet   the grad_norms probe's rows, where it was on
    <out>/{runs,history,grad_norms}/compacted-<t>.parquet   many runs, folded by `compact`

Each writing process (a run, a worker, a shard) appends to parts of its own, of at most
`PART_RUNS` runs: every run it finishes rewrites its history part and then its runs part through
a temp file and a rename. A run is done once its row is in a runs part; a killed writer leaves
every run it committed and none half-written (history rows without their row are ignored). A
run_id with rows in several files (re-run, or a compaction killed half-way) counts once: the
newest `written_at` wins, and its history comes from one file. Few files per thousand runs keep
reading fast; `compact` folds the parts into one file per table.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cnnbench.errors import CnnbenchError
from cnnbench.results.files import (
    MARKER,
    TABLES,
    check_version,
    file_identity,
    now_us,
    write_marker,
    write_parquet,
)
from cnnbench.results.loading import read_runs, warn_damaged
from cnnbench.results.schema import DONE, SCHEMA_VERSION, RunRow
from cnnbench.results.tables import grad_norms_table, history_table, runs_table

PART = "part-"  # prefix of a writer's files
PART_RUNS = 100  # runs per part: rewriting it stays cheap, and 50,000 runs are 500 files


@dataclass
class _Part:
    """This process's open part: its runs so far, rewritten whole with every new run."""

    root: Path
    name: str
    pid: int = field(default_factory=os.getpid)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    table: pa.Table | None = None  # the records as the runs file holds them
    history: dict[str, pa.Table] = field(default_factory=dict)
    grad_norms: dict[str, pa.Table] = field(default_factory=dict)
    committed: tuple[int, int, int] | None = None  # the runs file as this part last wrote it

    def usable(self) -> bool:
        """Still this process's, not full, and not folded away by a compaction (which removes
        a runs part only as it read it: its rows are then in the compacted file)."""
        return (self.pid == os.getpid() and len(self.records) < PART_RUNS
                and file_identity(self.root / "runs" / self.name) == self.committed)

    def commit(self, record: dict[str, Any], history: pa.Table | None,
               grad_norms: pa.Table | None, what: str) -> Path:
        run_id = record["run_id"]
        self.table = self._runs_with(record, replacing=run_id in self.records)
        self.records[run_id] = record
        for rows, table in ((self.history, history), (self.grad_norms, grad_norms)):
            rows.pop(run_id, None)
            if table is not None:
                rows[run_id] = table
        # rows first, the `runs` row last: a reader that sees the row finds its history
        for table, rows in (("history", self.history), ("grad_norms", self.grad_norms)):
            if run_id in rows:
                target = self.root / table / self.name
                write_parquet(pa.concat_tables(rows.values()).combine_chunks(), target,
                              f"{what} to {target}")
        target = self.root / "runs" / self.name
        write_parquet(self.table, target, f"{what} to {target}")
        self.committed = file_identity(target)
        return target

    def _runs_with(self, record: dict[str, Any], *, replacing: bool) -> pa.Table:
        """The part's `runs` table with `record` added: appended as one typed row (re-typing
        every record on each run costs milliseconds), or all retyped when it replaces a row or
        a column's type differs from the rows before (a tool's records)."""
        if self.table is not None and not replacing:
            try:
                # one chunk per column: one-row chunks cost the parquet writer per chunk
                return pa.concat_tables([self.table, runs_table([record])],
                                        promote_options="permissive").combine_chunks()
            except (pa.ArrowTypeError, pa.ArrowInvalid):
                pass
        return runs_table([*(r for k, r in self.records.items() if k != record["run_id"]),
                           record])


class ResultStore:
    """The results folder of one suite."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.runs_dir = self.root / "runs"
        self.damaged: list[tuple[Path, str]] = []  # what the last `statuses()` could not read
        self.marked = False  # the version marker is there: written with the first row, so that
        # a suite that stops before its first run leaves no file behind
        self.part: _Part | None = None

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
        """Write a flat `runs` record and its history rows (tests and tools build them); returns
        the runs file that now holds the row."""
        record = {**summary, "schema_version": SCHEMA_VERSION, "written_at": now_us()}
        identity = {**record, "run_lr": record.get("lr")}
        if self.part is None or not self.part.usable():
            self.part = _Part(self.root, f"{PART}{secrets.token_hex(6)}-{os.getpid()}.parquet")
        if not self.marked and not (self.root / MARKER).exists():
            write_marker(self.root)
        self.marked = True
        return self.part.commit(
            record, history_table(history, identity) if history else None,
            grad_norms_table(grad_norms, record["written_at"]) if grad_norms else None,
            f"cannot write the result of run {record['run_id']}")

    def read_summary(self, run_id: str) -> dict[str, Any] | None:
        """The newest `runs` row of `run_id` as a dict, or None."""
        if not self.runs_dir.is_dir():
            return None
        table = read_runs(self.root).table
        rows = table.filter(pc.equal(table["run_id"], run_id)).to_pylist()
        return rows[0] if rows else None

    def statuses(self) -> dict[str, str]:
        """run_id → status of every run that has a row, interrupted ones included. Files that
        cannot be read are kept in `damaged` (and warned about): their runs count as not done."""
        scan = read_runs(self.root, columns=["run_id", "status", "written_at"])
        self.damaged = scan.damaged
        warn_damaged(scan.damaged)
        return dict(zip(scan.table.column("run_id").to_pylist(),
                        scan.table.column("status").to_pylist(), strict=True))

    def contended_ids(self) -> set[str]:
        """The runs whose newest row says `timing: contended` (older rows have no timing)."""
        table = read_runs(self.root, columns=["run_id", "timing", "written_at"]).table
        if "timing" not in table.column_names:
            return set()
        newest: dict[str, tuple] = {}
        for run_id, timing, at in zip(*(table.column(c).to_pylist()
                                         for c in ("run_id", "timing", "written_at"))):
            if run_id not in newest or at >= newest[run_id][0]:
                newest[run_id] = (at, timing)
        return {run_id for run_id, (_, timing) in newest.items() if timing == "contended"}

    def finished_ids(self) -> dict[str, str]:
        """run_id → status of every run that has a row (interrupted ones excluded)."""
        return {k: v for k, v in self.statuses().items() if v in DONE}
