"""`compact`: fold a folder's loose files (writers' parts, version-1 run files) into one
consolidated file per table, safely while shards are still writing and whatever moment it is
killed at.

The steps, each of which leaves a folder that loads every run once (readers keep the newest
row of a run_id and take each run's history from one file):
1. read every listed file (the newest row of each run_id wins);
2. write `compacted-<t>.parquet` for history and grad_norms, then for runs (the commit point);
3. remove what was folded: every runs file read, and each history or grad_norms file whose
   every row belongs to a row written at or after it (not a writer's run still being
   committed) — each only if it is still the file that was read. A writer may have rewritten
   its part meanwhile: the file is renamed aside first and, if it is not the file that was
   read, linked back (never over an even newer one).
A lock file keeps two compactions of one folder from running at once.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cnnbench.errors import CnnbenchError
from cnnbench.results.files import (
    COMPACTED,
    TABLES,
    compacted_options,
    file_identity,
    now_us,
    table_files,
    write_parquet,
)
from cnnbench.results.loading import (
    RETRIES,
    Vanished,
    read_rows,
    read_runs_once,
    warn_damaged,
)
from cnnbench.results.schema import GRAD_NORM_TYPES, HISTORY_EXTRA_TYPES, HISTORY_TYPES
from cnnbench.results.store import ResultStore

ASIDE = ".aside-"  # a loose run file renamed aside in step 3 (hidden from readers)
AUTO_COMPACT_FILES = 50  # `run` compacts when it leaves this many loose runs files (5,000 runs)


@dataclass(frozen=True)
class Compaction:
    runs: int  # rows in the new runs file
    removed: int  # files folded and removed
    damaged: list[tuple[Path, str]]  # left in place, named


def loose_run_files(root: Path) -> int:
    return sum(1 for p in table_files(root, "runs") if not p.name.startswith(COMPACTED))


def compact(out: str | Path, *, crash_after: str | None = None) -> Compaction:
    """Fold `out`'s files into one consolidated file per table. `crash_after` (tests) names a
    step after which the process dies as if killed: "history", "runs" or "remove-one"."""
    store = ResultStore(out)
    root = store.root
    if not store.runs_dir.is_dir():
        raise CnnbenchError(f"no results in {str(out)!r} (expected a folder with runs/ inside)")
    store.prepare()
    with _lock(root):
        _restore_aside(root)
        for _ in range(RETRIES):
            try:
                return _compact(root, crash_after)
            except Vanished:  # another tool removed a file under us: start again
                continue
    raise CnnbenchError(f"{str(out)!r} kept changing while it was compacted; try again")


def _compact(root: Path, crash_after: str | None) -> Compaction:
    listed = {table: table_files(root, table) for table in TABLES}
    seen = {p: file_identity(p) for paths in listed.values() for p in paths}
    scan = read_runs_once(root, None)
    v1 = [run.tables() for run in scan.v1_runs]
    history = read_rows(root, "history", {**HISTORY_TYPES, **HISTORY_EXTRA_TYPES}, scan.table,
                        [t[1] for t in v1])
    norms = read_rows(root, "grad_norms", GRAD_NORM_TYPES, scan.table,
                      [t[2] for t in v1 if t[2] is not None])
    damaged = scan.damaged + history.damaged + norms.damaged
    name = f"{COMPACTED}{now_us()}.parquet"
    what = f"cannot compact {str(root)!r}"
    # sorted, so that a reader's history comes out in run order without a sort
    rows = history.table.sort_by([("run_id", "ascending"), ("step", "ascending")])
    write_parquet(rows, root / "history" / name, what, compacted_options(rows))
    if norms.table.num_rows:
        write_parquet(norms.table, root / "grad_norms" / name, what,
                      compacted_options(norms.table))
    _maybe_crash(crash_after, "history")
    write_parquet(scan.table, root / "runs" / name, what, compacted_options(scan.table))
    _maybe_crash(crash_after, "runs")
    # what may go: every runs file read (its rows are folded), and history files none of whose
    # rows a writer is still committing; each only if it is still the file that was read
    removable = set(listed["runs"]) | history.settled | norms.settled
    removable -= {p for p, _ in damaged}
    removed = 0
    for path in sorted(removable):
        if path.name != name:
            removed += _remove_if_unchanged(path, seen[path])
            _maybe_crash(crash_after, "remove-one")
    warn_damaged(damaged)
    return Compaction(scan.table.num_rows, removed, damaged)


def _remove_if_unchanged(path: Path, seen: tuple[int, int, int] | None) -> int:
    aside = path.with_name(f"{ASIDE}{path.name}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return 0
    if file_identity(aside) != seen:  # a writer put a newer row here after it was read: keep it
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # an even newer row is there already
        aside.unlink()
        return 0
    aside.unlink()
    return 1


def _restore_aside(root: Path) -> None:
    """Undo a step 3 that was killed between renaming a run file aside and deciding on it."""
    for aside in (root / "runs").glob(f"{ASIDE}*.parquet"):
        try:
            os.link(aside, aside.with_name(aside.name[len(ASIDE):]))
        except FileExistsError:
            pass
        aside.unlink()


class _lock:
    """An exclusive, non-blocking lock on `<out>/.compact.lock`; the kernel drops it if the
    process dies."""

    def __init__(self, root: Path) -> None:
        self.path = root / ".compact.lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise CnnbenchError(f"another compaction of {str(self.path.parent)!r} is running; "
                                "wait for it to finish") from None
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _maybe_crash(crash_after: str | None, step: str) -> None:
    if crash_after == step:
        os._exit(137)  # like kill -9: no cleanup, no finally blocks

