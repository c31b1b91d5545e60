"""Reading a results folder: loose and compacted files, version 1 and 2, newest row of a run_id
wins, damaged or foreign files named (a warning) and their runs counted as not done."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cnnbench.errors import CnnbenchError
from cnnbench.results.files import check_version, refuse_newer, table_files
from cnnbench.results.schema import (
    GRAD_NORM_COLUMNS,
    GRAD_NORM_TYPES,
    HISTORY_COLUMNS,
    HISTORY_TYPES,
    RUN_COLUMNS,
    WRITTEN_AT,
)
from cnnbench.results.tables import empty
from cnnbench.results.v1 import V1Run, is_v1, read_v1

RETRIES = 5  # a compaction removing files under a reader: read the folder again
READERS = min(8, os.cpu_count() or 1)


class DamagedResultsWarning(UserWarning):
    """Some files of a results folder could not be read; their runs count as not done."""


class Vanished(Exception):
    """A listed file disappeared before it was read (a compaction folded it)."""


def _read(path: Path, threads: bool, columns: list[str]) -> pa.Table | Exception:
    """Those of `columns` the file has (decoding the others took a fifth of a load)."""
    try:
        file = pq.ParquetFile(path)
        names = set(file.schema_arrow.names)
        return file.read(columns=[c for c in columns if c in names], use_threads=threads)
    except FileNotFoundError:
        raise Vanished from None
    except (OSError, pa.ArrowInvalid) as exc:
        return exc


@dataclass
class RunsScan:
    table: pa.Table  # the newest row of each run_id, sorted by run_id
    damaged: list[tuple[Path, str]] = field(default_factory=list)  # file, why
    v1_runs: list[V1Run] = field(default_factory=list)  # what each version-1 file holds


def read_runs(root: str | Path, columns: list[str] | None = None) -> RunsScan:
    """The `runs` table of a folder (only `columns`, if given: run_id and written_at always)."""
    root = Path(root)
    check_version(root)
    for _ in range(RETRIES):
        try:
            return read_runs_once(root, columns)
        except Vanished:
            continue
    return read_runs_once(root, columns)  # a last try: a file vanishing again now is an error


def _why(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _open_run(path: Path, wanted: list[str] | None, threads: bool) -> tuple[str, Any]:
    """("v2", table) | ("v1", V1Run) | ("damaged", why) | ("vanished", None)."""
    try:
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
        if is_v1(schema.metadata):
            return "v1", read_v1(path, file.read())
        if not {"run_id", "status", "written_at"} <= set(schema.names):
            return "damaged", "not a cnnbench results file"
        columns = [c for c in wanted if c in schema.names] if wanted else None
        return "v2", file.read(columns=columns, use_threads=threads)
    except FileNotFoundError:
        return "vanished", None
    except (OSError, pa.ArrowInvalid, ValueError, KeyError) as exc:
        return "damaged", _why(exc)


def _each(read, paths: list[Path]) -> list:
    """`read(path, threads)` over the files: a few (compacted ones are big) one after another,
    each decoded by arrow's threads; many small ones at once (parquet decoding releases the
    GIL)."""
    if len(paths) < 64:
        return [read(p, True) for p in paths]
    with ThreadPoolExecutor(READERS) as pool:
        return list(pool.map(lambda p: read(p, False), paths, chunksize=256))


def read_runs_once(root: Path, columns: list[str] | None) -> RunsScan:
    scan = RunsScan(pa.table({}))
    wanted = None if columns is None else list(dict.fromkeys(["run_id", "written_at",
                                                               "schema_version", *columns]))
    tables = []
    paths = table_files(root, "runs")
    opened = _each(lambda path, threads: _open_run(path, wanted, threads), paths)
    for path, (kind, value) in zip(paths, opened, strict=True):
        if kind == "vanished":
            raise Vanished
        if kind == "damaged":
            scan.damaged.append((path, value))
            continue
        if kind == "v1":
            scan.v1_runs.append(value)
            value = value.tables()[0]
        tables.append(value.select(wanted) if wanted else value)
    if not tables:
        types = {c: RUN_COLUMNS[c][0] for c in (wanted or RUN_COLUMNS)}
        scan.table = empty(types)
        return scan
    table = pa.concat_tables(tables, promote_options="permissive")
    versions = table.column("schema_version").drop_null()
    if len(versions):
        refuse_newer(root, pc.max(versions).as_py())
    scan.table = newest(table)
    return scan


def newest(table: pa.Table) -> pa.Table:
    """One row per run_id: the one written last (a re-run after compaction, or a compaction
    that was killed before it removed what it folded)."""
    ids = table.column("run_id")
    if len(ids) < 2 or pc.all(pc.greater(ids[1:], ids[:-1])).as_py():
        return table  # one row per run_id, in order (a compacted folder)
    ids = ids.to_numpy(zero_copy_only=False)
    written = table.column("written_at").cast(pa.int64()).fill_null(0).to_numpy()
    order = np.lexsort((written, ids))  # by run_id, then written_at: the last of a group wins
    last = np.ones(len(order), bool)
    last[:-1] = ids[order][1:] != ids[order][:-1]
    return table.take(pa.array(order[last]))


@dataclass
class RowsScan:
    table: pa.Table  # the rows of the winning `runs` rows, each run's from one file
    damaged: list[tuple[Path, str]]
    settled: set[Path]  # files none of whose rows a writer may still be committing


def read_rows(root: Path, table: str, types: dict[str, pa.DataType], runs: pa.Table,
              extra: list[pa.Table]) -> RowsScan:
    """The rows of `history` or `grad_norms` that belong to the winning `runs` rows, each run's
    rows from one file only; `extra`: rows read from version-1 files."""
    tables, damaged, paths = [], [], []
    listed = table_files(root, table)
    reads = _each(lambda path, threads: _read(path, threads, list(types)), listed)
    for path, read in zip(listed, reads, strict=True):
        if isinstance(read, Exception):
            damaged.append((path, _why(read)))
        elif set(types) <= set(read.schema.names):
            tables.append(read.select(list(types)))
            paths.append(path)
    tables += [t.select(list(types)) for t in extra]
    if not tables:
        return RowsScan(empty(types), damaged, set())
    source = np.concatenate([np.full(t.num_rows, i) for i, t in enumerate(tables)])
    rows = pa.concat_tables(tables, promote_options="permissive")
    run = pc.index_in(rows["run_id"], value_set=runs["run_id"]).fill_null(-1).to_numpy()
    written = rows["written_at"].cast(pa.int64()).fill_null(-1).to_numpy()
    wanted = runs["written_at"].cast(pa.int64()).fill_null(0).to_numpy()
    row_of_run = np.append(wanted, -2)[run]
    # a row whose run has no row written at or after it belongs to a writer still committing
    unsettled = np.unique(source[(run < 0) | (written > row_of_run)])
    settled = {p for i, p in enumerate(paths) if i not in set(unsettled.tolist())}
    # rows of the winning row (not older ones, nor a writer's not yet committed)
    keep = (run >= 0) & (written == row_of_run)
    first = np.full(len(wanted), len(tables))
    np.minimum.at(first, run[keep], source[keep])  # a run's rows come from one file only
    keep[keep] = source[keep] == first[run[keep]]
    # every row kept (a compacted folder): no copy, a tenth of a load in a fresh process
    return RowsScan(rows if keep.all() else rows.filter(pa.array(keep)), damaged, settled)


def warn_damaged(damaged: list[tuple[Path, str]]) -> None:
    if damaged:
        names = "; ".join(f"{path} ({why})" for path, why in damaged)
        warnings.warn(DamagedResultsWarning(
            f"{len(damaged)} result file(s) could not be read and their runs count as not done "
            f"(`cnnbench run` runs them again): {names}"), stacklevel=3)


def _folder(path: str | Path) -> Path:
    root = Path(path)
    if not (root / "runs").is_dir():
        raise CnnbenchError(f"no results in {str(path)!r} (expected a folder with runs/ inside, "
                            "as written by `cnnbench run --out`)")
    return root


def load_results(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy `runs` (one row per run) and `history` (one row per evaluation) DataFrames,
    of any folder version; unreadable files are named in a DamagedResultsWarning."""
    root = _folder(path)
    check_version(root)
    for attempt in range(RETRIES + 1):
        try:
            scan = read_runs_once(root, None)
            v1 = [run.tables()[1] for run in scan.v1_runs]
            history = read_rows(root, "history", {**HISTORY_TYPES, "written_at": WRITTEN_AT},
                                scan.table, v1)
            break
        except Vanished:
            if attempt == RETRIES:
                raise CnnbenchError(f"{str(root)!r} kept changing while it was read; "
                                    "try again") from None
    warn_damaged(scan.damaged + history.damaged)
    rows = history.table.select(HISTORY_COLUMNS)
    if not _in_run_order(rows):  # a compacted folder's history already is
        rows = rows.take(pc.sort_indices(rows, [("run_id", "ascending"), ("step", "ascending")]))
    return scan.table.to_pandas(), rows.to_pandas()


def _in_run_order(rows: pa.Table) -> bool:
    """Whether `rows` are sorted by run_id, then step: compared by arrow (run_ids as Python
    strings took 0.1 s at 550,000 rows)."""
    if rows.num_rows < 2:
        return True
    ids, steps = rows["run_id"], rows["step"]
    later = pc.greater(ids[1:], ids[:-1])
    same_run_on = pc.and_(pc.equal(ids[1:], ids[:-1]), pc.greater_equal(steps[1:], steps[:-1]))
    return bool(pc.all(pc.or_(later, same_run_on), skip_nulls=False).as_py())


def load_grad_norms(path: str | Path) -> pd.DataFrame:
    """The `grad_norms` probe's tidy table (run_id, epoch, step, layer, ndim, grad_norm) of a
    results folder; empty where no run had the probe on. Epoch 0 holds the first step's
    gradient; within a run and epoch, layers keep the model's parameter order."""
    root = _folder(path)
    scan = read_runs(root, ["status"])
    v1 = [t for t in (run.tables()[2] for run in scan.v1_runs) if t is not None]
    rows = read_rows(root, "grad_norms", GRAD_NORM_TYPES, scan.table, v1).table
    return rows.select(GRAD_NORM_COLUMNS).to_pandas()
