"""The files of a results folder: their names, the version marker, and atomic writes (temp
file + fsync + rename) with the parquet options of loose and compacted files.

    <out>/cnnbench-results.json        {"schema_version": 2, ...}
    <out>/{runs,history,grad_norms}/   the three tables (docs/results.md)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cnnbench.errors import CnnbenchError
from cnnbench.results.schema import SCHEMA_VERSION

MARKER = "cnnbench-results.json"
TABLES = ("runs", "history", "grad_norms")
COMPACTED = "compacted-"  # prefix of folded files; loose ones are parts (or v1 run files)


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


# A loose file (a writer's part) holds at most a hundred runs and is rewritten after each one:
# compression, dictionaries and statistics only cost time there. A compacted file holds
# thousands: zstd, dictionaries for columns with
# few distinct values (accuracies are k/n), byte-stream-split for the other floats (losses come
# from float32 tensors: their low bytes are zeros).
LOOSE = {"compression": "none", "use_dictionary": False, "write_statistics": False}


def compacted_options(table: pa.Table) -> dict[str, Any]:
    spread = [f.name for f in table.schema if pa.types.is_floating(f.type)
              and pc.count_distinct(table[f.name]).as_py() > table.num_rows // 4]
    return {"compression": "zstd", "compression_level": 9, "use_byte_stream_split": spread,
            "use_dictionary": [name for name in table.schema.names if name not in spread]}


def write_parquet(table: pa.Table, target: Path, what: str, options: dict[str, Any] = LOOSE
                  ) -> None:
    """Write one table atomically; a failure leaves no file and stops the suite (WriteError)."""
    atomic_write(target, lambda f: pq.write_table(table, f, **options), what,
                 "No partial file was left; free space or restore the folder, then run the "
                 "suite again to resume")


def now_us() -> int:
    return time.time_ns() // 1000


def write_marker(root: Path) -> None:
    atomic_write(root / MARKER, lambda f: f.write(json.dumps(
        {"schema_version": SCHEMA_VERSION, "tables": list(TABLES),
         "documented_in": "cnnbench's docs, docs/results.md"}).encode()),
        f"cannot write {str(root / MARKER)!r}", "Free space or choose another --out")


def check_version(root: Path) -> None:
    """Refuse a folder written by a newer cnnbench, naming both schema versions."""
    try:
        version = json.loads((root / MARKER).read_text()).get("schema_version", 1)
    except (OSError, ValueError, AttributeError):
        return  # no marker: version 1, or not written yet
    refuse_newer(root, version)


def refuse_newer(root: Path, version: int) -> None:
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise CnnbenchError(
            f"{str(root)!r} holds results of schema version {version}; this cnnbench reads "
            f"versions 1 to {SCHEMA_VERSION}: upgrade cnnbench to read them")


def table_files(root: Path, table: str) -> list[Path]:
    """The parquet files of one table, loose and compacted (temp and hidden files excluded)."""
    return sorted((root / table).glob("[!.]*.parquet"))


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, mtime, size) of a file, None if it is gone: tells a file from its replacement."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
