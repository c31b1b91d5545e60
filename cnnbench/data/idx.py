"""MNIST, Fashion-MNIST and KMNIST: the IDX file format, gzipped or not.

Looked for under the data root as `mnist/`, `fashion-mnist/`, `kmnist/` (the official file names),
or torchvision's `MNIST/raw/`, `FashionMNIST/raw/`, `KMNIST/raw/`. Files found are read as they
are (any gzip wrapper of the original content will do); missing ones are downloaded and verified
against the publishers' MD5 checksums of their gzipped files.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench.data.download import Resource, download_files, missing_files_message
from cnnbench.data.registry import ArrayDataset, register_dataset
from cnnbench.errors import CnnbenchError

GZIP_MAGIC = b"\x1f\x8b"
IDX_UBYTE = 0x08  # the only element type these datasets use
SPLITS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes as an array of its shape; gzip is detected by its magic."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == GZIP_MAGIC:
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != IDX_UBYTE:
        raise CnnbenchError(f"{path} is not an IDX file of unsigned bytes")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) != header + int(np.prod(shape)):
        raise CnnbenchError(f"{path}: {len(raw) - header} data bytes, but its header says "
                            f"{'×'.join(map(str, shape))}")
    # a copy: arrays over the read-only bytes would make read-only (unsafe for torch) tensors
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


@dataclass(frozen=True)
class IdxSource:
    folder: str  # under the data root, as the official archive names it
    torchvision_folder: str
    mirrors: tuple[str, ...]
    md5: tuple[str, str, str, str]  # of the official .gz files, in SPLITS order
    classes: tuple[str, ...]

    @property
    def resources(self) -> list[Resource]:
        return [Resource(f"{name}.gz", md5) for name, md5 in zip(SPLITS, self.md5, strict=True)]


SOURCES = {
    "mnist": IdxSource(
        "mnist", "MNIST",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://storage.googleapis.com/cvdf-datasets/mnist/",
         "http://yann.lecun.com/exdb/mnist/"),
        ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
         "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c"),
        tuple(str(d) for d in range(10))),
    "fashion-mnist": IdxSource(
        "fashion-mnist", "FashionMNIST",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
         "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310"),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
         "Bag", "Ankle boot")),
    "kmnist": IdxSource(
        "kmnist", "KMNIST",
        ("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        ("bdb82020997e1d708af4cf47b453dcf7", "e144d726b3acfaa3e44228e80efcd344",
         "5c965bf0a639b31b8f53240b1b52f4d7", "7320c461ea6c1c855c0b718fb2a4b134"),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
}


def _file_in(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx(source: IdxSource, root: Path) -> list[Path] | None:
    """The four files of the first folder that holds them all, else None."""
    for folder in (root / source.folder, root / source.torchvision_folder / "raw"):
        files = [_file_in(folder, name) for name in SPLITS]
        if all(files):
            return files  # type: ignore[return-value]
    return None


def load_idx_dataset(name: str, root: Path, *, download: bool) -> ArrayDataset:
    source = SOURCES[name]
    files = find_idx(source, root)
    if files is None:
        folder = root / source.folder
        missing = [r for r, split in zip(source.resources, SPLITS, strict=True)
                   if not _file_in(folder, split)]
        if not download:
            raise CnnbenchError(f"dataset {name} is not under {root} (and download is off). "
                                + missing_files_message(missing, list(source.mirrors), folder))
        download_files(missing, list(source.mirrors), folder, name)
        files = find_idx(source, root)
        assert files is not None  # every missing file was just downloaded and verified
    x_train, y_train, x_test, y_test = (read_idx(f) for f in files)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise CnnbenchError(f"dataset {name}: image and label counts differ in {files[0].parent}")
    return ArrayDataset(name, x_train[:, None], y_train.astype(np.int64),
                        x_test[:, None], y_test.astype(np.int64), source.classes)


def _register(name: str, description: str) -> None:
    def read(config, root: Path) -> ArrayDataset:
        return load_idx_dataset(name, root, download=config.download)

    def locate(root: Path) -> str | None:
        files = find_idx(SOURCES[name], root)
        if files:
            return str(files[0].parent)
        folder = root / SOURCES[name].folder
        present = sum(_file_in(folder, split) is not None for split in SPLITS)
        return f"incomplete: {present} of 4 files in {folder}" if present else None

    register_dataset(name, shape="1×28×28", classes=10, sizes="60,000 train / 10,000 test",
                     description=description, locate=locate)(read)


_register("mnist", "handwritten digits (LeCun, Cortes, Burges)")
_register("fashion-mnist", "Zalando clothing images (Xiao, Rasul, Vollgraf 2017)")
_register("kmnist", "Kuzushiji cursive Japanese characters (Clanuwat et al. 2018)")
