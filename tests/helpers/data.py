"""Small files in the official dataset formats (MNIST IDX, CIFAR arrays), written by the tests."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from cnnbench.data.idx import SPLITS


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_mnist(folder: Path, *, gz: bool, n_train: int = 30, n_test: int = 10,
                seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    arrays = {SPLITS[0]: rng.integers(0, 256, (n_train, 28, 28)),
              SPLITS[1]: np.arange(n_train) % 10,
              SPLITS[2]: rng.integers(0, 256, (n_test, 28, 28)),
              SPLITS[3]: np.arange(n_test)[::-1] % 10}
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def cifar_arrays(n: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
            np.arange(n) % classes, (np.arange(n) % classes) // 5)
