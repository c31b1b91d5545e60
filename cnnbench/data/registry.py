"""The datasets registry. A dataset entry reads (or makes) uint8 arrays; nothing here touches torch.

Each entry is `fn(config: DatasetConfig, root: Path) -> ArrayDataset`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cnnbench.registry import Registry


@dataclass(frozen=True)
class ArrayDataset:
    """Images as uint8 (N, C, H, W) and labels as int64 (N,), split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class DatasetInfo:
    """What `cnnbench list datasets` shows."""

    shape: str
    classes: int | str
    sizes: str
    description: str
    augment: str = "none"  # what `augment:` means when a suite leaves it out
    # where the dataset is found under a data root, or None; unset: it needs no files
    locate: Callable[[Path], str | None] | None = None


DATASETS: Registry[Callable[..., ArrayDataset]] = Registry("dataset")
DATASET_INFO: dict[str, DatasetInfo] = {}


def register_dataset(name: str, **info):
    """Decorator: `@register_dataset("mnist-mini", shape=..., ...)`."""

    def add(fn: Callable[..., ArrayDataset]) -> Callable[..., ArrayDataset]:
        DATASETS.register(fn, name=name)
        DATASET_INFO[name] = DatasetInfo(**info)
        return fn

    return add


def default_data_root(explicit: str | None = None) -> Path:
    """Suite `dataset.root` or --data-dir, else $CNNBENCH_DATA, else the per-user cache."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("CNNBENCH_DATA"):
        return Path(os.environ["CNNBENCH_DATA"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "cnnbench"
