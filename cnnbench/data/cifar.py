"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009): the official binary version, or the python version.

Looked for under the data root as the archives unpack: `cifar-10-batches-bin/` or
`cifar-10-batches-py/`, `cifar-100-binary/` or `cifar-100-python/`. When neither is there the
binary archive is downloaded (no pickle involved) and verified against its official MD5.

The python version is pickled. Its files are read with a restricted unpickler that can build only
what CIFAR holds (numpy arrays, their dtypes, and plain lists, dicts, strings and numbers), so a
tampered file raises an error instead of running code.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench.data.download import Resource, download_archive
from cnnbench.data.registry import ArrayDataset, register_dataset
from cnnbench.errors import CnnbenchError

try:  # numpy ≥ 2 moved the pickling helpers; pickles name either module
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]
    from numpy.core import numeric as _numeric  # type: ignore[no-redef]

IMAGE_BYTES = 3 * 32 * 32
MIRRORS = ["https://www.cs.toronto.edu/~kriz/"]


# ─── The restricted unpickler ──────────────────────────────────────────────────────────────────

_ALLOWED = {
    (module, "_reconstruct"): _multiarray._reconstruct
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
} | {
    (module, "_frombuffer"): _numeric._frombuffer
    for module in ("numpy.core.numeric", "numpy._core.numeric")
} | {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    # protocol-2 pickles written by Python 3 spell bytes as encode(str, "latin1")
    ("_codecs", "encode"): codecs.encode}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name}: a CIFAR file holds only numpy arrays, "
                "lists, dicts, strings and numbers") from None


def load_pickle(path: Path) -> dict[str, object]:
    """One file of CIFAR's python version, its keys as str (they are bytes in the originals)."""
    try:
        with open(path, "rb") as f:
            content = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise CnnbenchError(f"{path} is not a CIFAR python-version file: {exc}") from None
    if not isinstance(content, dict):
        raise CnnbenchError(f"{path} is not a CIFAR python-version file (not a dict)")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}


# ─── Readers ───────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class CifarSource:
    bin_folder: str
    bin_train: tuple[str, ...]
    bin_test: str
    bin_meta: str  # class names, one a line
    label_bytes: int  # CIFAR-100 records carry (coarse, fine) before the pixels
    py_folder: str
    py_train: tuple[str, ...]
    py_test: str
    py_meta: str
    archive: Resource  # the binary version


CIFAR10 = CifarSource(
    "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin",
    "batches.meta.txt", 1,
    "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), "test_batch",
    "batches.meta",
    Resource("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530"))
CIFAR100 = CifarSource(
    "cifar-100-binary", ("train.bin",), "test.bin", "fine_label_names.txt", 2,
    "cifar-100-python", ("train",), "test", "meta",
    Resource("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8"))


def _images(flat: np.ndarray, path: Path) -> np.ndarray:
    if flat.ndim != 2 or flat.shape[1] != IMAGE_BYTES or flat.dtype != np.uint8:
        raise CnnbenchError(f"{path}: expected uint8 rows of {IMAGE_BYTES} pixels, "
                            f"found {flat.dtype} {flat.shape}")
    return flat.reshape(-1, 3, 32, 32)


def read_binary(path: Path, label_bytes: int, label_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Records of `label_bytes` label bytes then 3072 pixel bytes (R, G, B planes, row-major)."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + IMAGE_BYTES
    if raw.size == 0 or raw.size % record:
        raise CnnbenchError(f"{path}: {raw.size} bytes is not a whole number of "
                            f"{record}-byte CIFAR records")
    raw = raw.reshape(-1, record)
    return _images(raw[:, label_bytes:], path), raw[:, label_index].astype(np.int64)


def read_python(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    content = load_pickle(path)
    if "data" not in content or label_key not in content:
        raise CnnbenchError(f"{path}: a CIFAR batch needs 'data' and {label_key!r}, "
                            f"found {sorted(content)}")
    return _images(np.asarray(content["data"]), path), np.asarray(content[label_key], np.int64)


def _names(values: list) -> tuple[str, ...]:
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)


def find_cifar(source: CifarSource, root: Path) -> Path | None:
    for folder, files in ((source.bin_folder, (*source.bin_train, source.bin_test)),
                          (source.py_folder, (*source.py_train, source.py_test))):
        if all((root / folder / f).is_file() for f in files):
            return root / folder
    return None


def load_cifar(name: str, source: CifarSource, root: Path, *, download: bool,
               coarse: bool = False) -> ArrayDataset:
    folder = find_cifar(source, root)
    if folder is None:
        if not download:
            raise CnnbenchError(
                f"dataset {name} is not under {root} (and download is off). Unpack "
                f"{MIRRORS[0]}{source.archive.filename} (md5 {source.archive.md5}) there, so "
                f"that {root / source.bin_folder} exists (or put the python version's "
                f"{source.py_folder}/ there)")
        folder = download_archive(source.archive, MIRRORS, root, source.bin_folder, name)
    if folder.name == source.bin_folder:
        label_index = 0 if coarse or source.label_bytes == 1 else 1
        parts = [read_binary(folder / f, source.label_bytes, label_index)
                 for f in (*source.bin_train, source.bin_test)]
        meta = "coarse_label_names.txt" if coarse else source.bin_meta
        classes = tuple(line.strip() for line in (folder / meta).read_text().splitlines()
                        if line.strip())
    else:
        key = "labels" if source.label_bytes == 1 else ("coarse_labels" if coarse
                                                          else "fine_labels")
        parts = [read_python(folder / f, key) for f in (*source.py_train, source.py_test)]
        meta_key = {"labels": "label_names", "fine_labels": "fine_label_names",
                    "coarse_labels": "coarse_label_names"}[key]
        classes = _names(load_pickle(folder / source.py_meta)[meta_key])
    x_train = np.concatenate([x for x, _ in parts[:-1]])
    y_train = np.concatenate([y for _, y in parts[:-1]])
    x_test, y_test = parts[-1]
    if y_train.max() >= len(classes) or y_test.max() >= len(classes):
        raise CnnbenchError(f"dataset {name}: labels in {folder} exceed its {len(classes)} classes")
    return ArrayDataset(name, x_train, y_train, x_test, y_test, classes)


def _locate(source: CifarSource):
    def locate(root: Path) -> str | None:
        folder = find_cifar(source, root)
        return str(folder) if folder else None

    return locate


SIZES = "50,000 train / 10,000 test"


@register_dataset("cifar10", shape="3×32×32", classes=10, sizes=SIZES, augment="standard",
                  description="CIFAR-10 photos, 10 classes (Krizhevsky 2009)",
                  locate=_locate(CIFAR10))
def cifar10(config, root: Path) -> ArrayDataset:
    return load_cifar("cifar10", CIFAR10, root, download=config.download)


@register_dataset("cifar100", shape="3×32×32", classes=100, sizes=SIZES, augment="standard",
                  description="CIFAR-100 photos, the 100 fine labels",
                  locate=_locate(CIFAR100))
def cifar100(config, root: Path) -> ArrayDataset:
    return load_cifar("cifar100", CIFAR100, root, download=config.download)


@register_dataset("cifar100-coarse", shape="3×32×32", classes=20, sizes=SIZES,
                  augment="standard", description="CIFAR-100 photos, the 20 coarse superclasses",
                  locate=_locate(CIFAR100))
def cifar100_coarse(config, root: Path) -> ArrayDataset:
    return load_cifar("cifar100-coarse", CIFAR100, root, download=config.download, coarse=True)
