"""Verified downloads: a list of mirrors tried in order, retries, a progress bar, the official
MD5 checksums, and atomic placement (nothing half-written is ever left where a reader looks).

Without a network the error says exactly which files to put where, so a user can copy them by hand.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from cnnbench.errors import CnnbenchError

RETRIES = 3  # tries per mirror
BACKOFF_S = 0.5  # wait before the second try; doubled before each later one
TIMEOUT_S = 30
CHUNK_BYTES = 1 << 20


class DownloadError(CnnbenchError):
    """No mirror served a file whose checksum matched."""


@dataclass(frozen=True)
class Resource:
    """One file as its publisher serves it."""

    filename: str
    md5: str


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)  # the publishers' checksums are MD5
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_once(url: str, dest: Path, label: str) -> None:
    with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task(label, total=total)
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(block)
                progress.advance(task, len(block))


def download(resource: Resource, mirrors: list[str], dest_dir: Path) -> Path:
    """Fetch `resource` into `dest_dir`, verified; the file appears there only once it matches."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / resource.filename
    failures: list[str] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + resource.filename
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))
            fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{resource.filename}.")
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                _fetch_once(url, tmp, resource.filename)
                got = md5sum(tmp)
                if got != resource.md5:
                    # a corrupt or tampered copy: another try at this mirror would serve the same
                    failures.append(f"{url}: md5 {got} does not match the official {resource.md5}")
                    break
                os.replace(tmp, final)
                return final
            except (urllib.error.URLError, OSError) as exc:
                failures.append(f"{url}: {getattr(exc, 'reason', exc)}")
            finally:
                tmp.unlink(missing_ok=True)
    corrupt = any("does not match" in f for f in failures)
    what = "no mirror served a verified copy" if corrupt else "could not be downloaded"
    raise DownloadError(
        f"{resource.filename} {what}:\n  " + "\n  ".join(failures)
        + f"\nDownload it by hand (md5 {resource.md5}) and put it at {final}"
    )


def download_files(resources: list[Resource], mirrors: list[str], dest_dir: Path,
                   dataset: str) -> None:
    """Fetch several files; on failure say which ones to place where, with their checksums."""
    try:
        for resource in resources:
            download(resource, mirrors, dest_dir)
    except DownloadError as exc:
        raise DownloadError(f"dataset {dataset}: {exc}\n"
                            + missing_files_message(resources, mirrors, dest_dir)) from None


def download_archive(resource: Resource, mirrors: list[str], root: Path, folder: str,
                     dataset: str) -> Path:
    """Fetch a verified tar.gz and unpack it so that `root/folder` appears whole or not at all."""
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{folder}.") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            archive = download(resource, mirrors, tmp)
        except DownloadError as exc:
            raise DownloadError(f"dataset {dataset}: {exc}\nor unpack it there, so that "
                                f"{root / folder} exists") from None
        with tarfile.open(archive) as tar:
            tar.extractall(tmp / "unpacked", filter="data")
        unpacked = tmp / "unpacked" / folder
        if not unpacked.is_dir():
            raise DownloadError(f"dataset {dataset}: {resource.filename} holds no {folder}/")
        os.replace(unpacked, root / folder)
    return root / folder


def missing_files_message(resources: list[Resource], mirrors: list[str], dest_dir: Path) -> str:
    lines = [f"Put these files (gzipped or not) in {dest_dir}/:"]
    lines += [f"  {r.filename}  (md5 {r.md5})" for r in resources]
    lines.append(f"from {mirrors[0]}" + (f" or {', '.join(mirrors[1:])}" if mirrors[1:] else ""))
    return "\n".join(lines)
