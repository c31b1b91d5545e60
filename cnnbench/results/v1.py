"""Schema version 1 (cnnbench before issue 14): one `runs/<run_id>.parquet` per run holding
its history rows, with the `runs` row and the grad_norms probe's rows as JSON in the parquet
metadata. Read here into the version-2 tables (results/upgrade.py rewrites them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from cnnbench.results.tables import grad_norms_table, history_table, runs_table

SUMMARY_KEY = b"cnnbench.summary"
GRAD_NORMS_KEY = b"cnnbench.grad_norms"


def is_v1(metadata: dict[bytes, bytes] | None) -> bool:
    return bool(metadata) and SUMMARY_KEY in metadata


@dataclass(frozen=True)
class V1Run:
    record: dict[str, Any]  # the `runs` row as version 1 wrote it, plus written_at
    history: list[dict[str, Any]]
    grad_norms: list[dict[str, Any]] | None

    def tables(self) -> tuple[pa.Table, pa.Table, pa.Table | None]:
        """The run as version-2 `runs`, `history` and `grad_norms` tables."""
        identity = {**self.record, "run_lr": self.record.get("lr")}
        norms = None if self.grad_norms is None else grad_norms_table(
            self.grad_norms, self.record["written_at"])
        return runs_table([self.record]), history_table(self.history, identity), norms


def read_v1(path: Path, table: pa.Table) -> V1Run:
    """A version-1 file (already read as `table`); its written_at is the file's mtime."""
    metadata = table.schema.metadata or {}
    record = json.loads(metadata[SUMMARY_KEY])
    record["written_at"] = path.stat().st_mtime_ns // 1000
    norms = None
    if GRAD_NORMS_KEY in metadata:
        columns = json.loads(metadata[GRAD_NORMS_KEY])
        norms = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(),
                                                                           strict=True)]
    return V1Run(record, table.replace_schema_metadata(None).to_pylist(), norms)
