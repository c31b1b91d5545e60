"""`cnnbench upgrade`: rewrite a version-1 results folder in the current layout, run by run."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cnnbench.errors import CnnbenchError
from cnnbench.results.files import check_version, write_marker
from cnnbench.results.store import ResultStore
from cnnbench.results.v1 import is_v1, read_v1


def upgrade(root: str | Path) -> int:
    """Rewrite every version-1 run file of `root` in the current layout; returns how many.

    Each run is rewritten as a new writer would write it (history first, the `runs` row last,
    replacing the old file by a rename), so a folder killed mid-upgrade loads every run once,
    and running `upgrade` again finishes the job."""
    store = ResultStore(root)
    if not store.runs_dir.is_dir():
        raise CnnbenchError(f"no results in {str(root)!r} (expected a folder with runs/ inside)")
    check_version(store.root)
    store.prepare()
    count = 0
    for path in sorted(store.runs_dir.glob("[!.]*.parquet")):
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            continue  # damaged: named by report, status and load_results; nothing to upgrade
        if is_v1(table.schema.metadata):
            run = read_v1(path, table)
            record = {k: v for k, v in run.record.items()
                      if k not in ("schema_version", "written_at")}
            store.write(record, run.history, grad_norms=run.grad_norms)
            path.unlink()  # killed before this, the run is there twice: its newer row wins
            count += 1
    write_marker(store.root)
    return count
