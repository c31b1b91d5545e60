"""Make cnnbench/data/bundled/mnist_mini.npz from the official MNIST test set (10,000 images).

    python scripts/make_mnist_mini.py ../shared/data/mnist

The split is stratified and seeded (numpy seed 0): 8,000 training and 2,000 test images.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from cnnbench.data.split import stratified_take

OUT = Path(__file__).resolve().parents[1] / "cnnbench" / "data" / "bundled" / "mnist_mini.npz"


def read_idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(folder: str) -> None:
    images = read_idx(Path(folder) / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(Path(folder) / "t10k-labels-idx1-ubyte.gz")
    test_idx, train_idx = stratified_take(labels, 2000, seed=0)
    np.savez_compressed(OUT, x_train=images[train_idx], y_train=labels[train_idx],
                        x_test=images[test_idx], y_test=labels[test_idx])
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes): "
          f"{len(train_idx)} train, {len(test_idx)} test")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/mnist")
