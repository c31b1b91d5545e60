"""Where a command will write, checked before any work starts: a missing or read-only folder, or
a folder where a file is expected, is one message (exit 2), never a traceback after the work."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from cnnbench.errors import CnnbenchError

# the stores MLflow's tracking client opens (a plain path is a file store)
MLFLOW_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https",
                  "databricks")


def check_output_file(path: Path, option: str) -> None:
    """`path` can be written as a file: it is no folder, and the nearest existing folder on the
    way to it (the missing ones are made) is writable."""
    path = Path(path)
    if path.is_dir():
        raise CnnbenchError(f"{option} {str(path)!r} is a folder; name a file in it, e.g. "
                            f"{path / 'report.html'}")
    _check_nearest(path.parent, option, path)


def check_output_folder(path: Path, option: str) -> None:
    """`path` can be made (or written into) as a folder: it is no file, and the nearest existing
    folder on the way to it is writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CnnbenchError(f"{option} {str(path)!r} is a file; name a folder")
    _check_nearest(path, option, path)


def _check_nearest(folder: Path, option: str, path: Path) -> None:
    """The nearest existing ancestor of `folder` (itself included) is a writable folder."""
    existing = folder if str(folder) else Path(".")
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CnnbenchError(f"{option} {str(path)!r}: {str(existing)!r} is a file, not a "
                            "folder; name another place")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CnnbenchError(f"{option} {str(path)!r}: the folder {str(existing)!r} is not "
                            "writable; name another")


def check_mlflow_uri(uri: str, option: str, *, paths: bool = True) -> None:
    """A tracking URI whose scheme MLflow knows; with `paths`, a local store's folder must be
    writable too (live tracking leaves that to the store: a failing store never stops
    training)."""
    scheme = urlparse(uri).scheme
    if len(scheme) <= 1:  # a plain path (`C:` is a drive letter): MLflow's file store
        if paths:
            check_output_folder(Path(uri), option)
        return
    if scheme not in MLFLOW_SCHEMES:
        raise CnnbenchError(f"{option} {uri!r}: unknown scheme {scheme!r}; use one of "
                            f"{', '.join(s + ':' for s in MLFLOW_SCHEMES)} or a folder")
    if scheme == "sqlite" and paths:
        file = urlparse(uri).path
        file = file[1:] if file.startswith("//") else file
        if file and file != "/:memory:":
            check_output_file(Path(file), option)
