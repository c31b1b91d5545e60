"""Datasets: importing this package registers every built-in dataset."""

from cnnbench.data import bundled, synthetic  # noqa: F401  (registers the entries)
from cnnbench.data.device import DeviceData
from cnnbench.data.registry import (
    DATASET_INFO,
    DATASETS,
    ArrayDataset,
    default_data_root,
    register_dataset,
)

__all__ = ["DATASETS", "DATASET_INFO", "ArrayDataset", "DeviceData", "default_data_root",
           "register_dataset", "load_dataset"]


def load_dataset(config, data_dir: str | None = None) -> ArrayDataset:
    """Read (or make) the arrays of the dataset a suite's `dataset:` section names."""
    return DATASETS.get(config.name)(config, default_data_root(config.root or data_dir))
