"""Datasets: importing this package registers every built-in dataset."""

from cnnbench.data import bundled, cifar, idx, imagefolder, synthetic  # noqa: F401  (registers)
from cnnbench.data.device import Augment, DeviceData, resolve_augment
from cnnbench.data.registry import (
    DATASET_INFO,
    DATASETS,
    ArrayDataset,
    default_data_root,
    register_dataset,
)

__all__ = ["DATASETS", "DATASET_INFO", "ArrayDataset", "Augment", "DeviceData",
           "default_data_root", "register_dataset", "load_dataset", "resolve_augment"]


def load_dataset(config, data_dir: str | None = None) -> ArrayDataset:
    """Read (or make) the arrays of the dataset a suite's `dataset:` section names."""
    return DATASETS.get(config.name)(config, default_data_root(config.root or data_dir))
