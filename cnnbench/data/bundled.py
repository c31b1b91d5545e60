"""mnist-mini: 10,000 real MNIST images shipped inside the package, so the quickstart needs no
download. It is the official MNIST test set split once (by `scripts/make_mnist_mini.py`, a
stratified split with numpy seed 0) into 8,000 training and 2,000 test images.

MNIST is by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from cnnbench.data.registry import ArrayDataset, register_dataset

DIGITS = tuple(str(d) for d in range(10))


@register_dataset(
    "mnist-mini", shape="1×28×28", classes=10, sizes="8,000 train / 2,000 test",
    description="real MNIST (its test set, split 8k/2k), bundled: works offline",
)
def mnist_mini(config, root: Path) -> ArrayDataset:
    with resources.files("cnnbench.data").joinpath("bundled/mnist_mini.npz").open("rb") as f:
        arrays = np.load(f, allow_pickle=False)
        arrays = {k: arrays[k] for k in arrays.files}
    return ArrayDataset(
        "mnist-mini",
        arrays["x_train"][:, None], arrays["y_train"].astype(np.int64),
        arrays["x_test"][:, None], arrays["y_test"].astype(np.int64),
        DIGITS,
    )
