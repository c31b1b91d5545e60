"""Verified downloads against a local HTTP server on 127.0.0.1: no test needs the internet."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import io
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from cnnbench.data import DATASETS, cifar, download, idx
from cnnbench.data.download import DownloadError, Resource
from cnnbench.data.idx import SPLITS
from cnnbench.suite import DatasetConfig
from tests.helpers.data import cifar_arrays, write_mnist


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def serve():
    """Serve a folder on a free port of 127.0.0.1; yields a function folder -> base URL."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there once the socket is closed


def test_good_file_is_verified_and_cached(serve, shared_data, tmp_path):
    served = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    resource = Resource(served.name, _md5(served))
    path = download.download(resource, [serve(served.parent)], tmp_path / "cache")
    assert path.read_bytes() == served.read_bytes()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [served.name]  # no temp left


def test_corrupted_file_is_rejected_and_nothing_is_left(serve, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "data.gz").write_bytes(b"tampered")
    resource = Resource("data.gz", hashlib.md5(b"original").hexdigest())
    with pytest.raises(DownloadError) as err:
        download.download(resource, [serve(tmp_path / "www")], tmp_path / "cache")
    assert "does not match the official" in str(err.value)
    assert f"put it at {tmp_path / 'cache' / 'data.gz'}" in str(err.value)
    assert list((tmp_path / "cache").iterdir()) == []


def test_second_mirror_is_used_when_the_first_is_down(serve, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.bin").write_bytes(b"payload")
    resource = Resource("f.bin", hashlib.md5(b"payload").hexdigest())
    path = download.download(resource, [_closed_port_url(), serve(tmp_path / "www")], tmp_path)
    assert path.read_bytes() == b"payload"


def test_mnist_downloads_verifies_and_reads(serve, monkeypatch, tmp_path):
    arrays = write_mnist(tmp_path / "www", gz=True)
    md5 = tuple(_md5(tmp_path / "www" / f"{name}.gz") for name in SPLITS)
    source = dataclasses.replace(idx.SOURCES["mnist"], mirrors=(serve(tmp_path / "www"),),
                                 md5=md5)
    monkeypatch.setitem(idx.SOURCES, "mnist", source)
    root = tmp_path / "data"
    data = DATASETS.get("mnist")(DatasetConfig(name="mnist"), root)
    np.testing.assert_array_equal(data.x_test[:, 0], arrays[SPLITS[2]])
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(f"{s}.gz" for s in SPLITS)


def test_offline_error_says_which_files_to_put_where(monkeypatch, tmp_path):
    source = dataclasses.replace(idx.SOURCES["mnist"], mirrors=(_closed_port_url(),))
    monkeypatch.setitem(idx.SOURCES, "mnist", source)
    with pytest.raises(DownloadError) as err:
        DATASETS.get("mnist")(DatasetConfig(name="mnist"), tmp_path)
    message = str(err.value)
    assert "could not be downloaded" in message and "Connection refused" in message
    assert f"Put these files (gzipped or not) in {tmp_path / 'mnist'}/" in message
    for name, md5 in zip(SPLITS, source.md5, strict=True):
        assert f"{name}.gz  (md5 {md5})" in message
    assert not any((tmp_path / "mnist").iterdir())


def _cifar_binary_archive(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin",
                                                                   "batches.meta.txt"]:
            if name.endswith(".txt"):
                blob = "\n".join(f"class{i}" for i in range(10)).encode()
            else:
                x, y, _ = cifar_arrays(2, 10, 0)
                blob = np.concatenate([y[:, None], x.reshape(2, -1)], 1).astype(np.uint8).tobytes()
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar_archive_is_verified_and_unpacked_atomically(serve, monkeypatch, tmp_path):
    (tmp_path / "www").mkdir()
    archive = tmp_path / "www" / "cifar-10-binary.tar.gz"
    _cifar_binary_archive(archive)
    monkeypatch.setattr(cifar, "MIRRORS", [serve(tmp_path / "www")])
    monkeypatch.setattr(cifar, "CIFAR10", dataclasses.replace(
        cifar.CIFAR10, archive=Resource(archive.name, _md5(archive))))
    data = DATASETS.get("cifar10")(DatasetConfig(name="cifar10"), tmp_path / "data")
    assert data.x_train.shape == (10, 3, 32, 32)
    assert [p.name for p in (tmp_path / "data").iterdir()] == ["cifar-10-batches-bin"]


def test_corrupt_cifar_archive_leaves_no_folder(serve, monkeypatch, tmp_path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(b"junk"))
    monkeypatch.setattr(cifar, "MIRRORS", [serve(tmp_path / "www")])
    with pytest.raises(DownloadError, match="md5 .* does not match the official c32a1d4ab5d0"):
        DATASETS.get("cifar10")(DatasetConfig(name="cifar10"), tmp_path / "data")
    assert list((tmp_path / "data").iterdir()) == []
