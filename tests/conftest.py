"""Shared fixtures: tiny suites on tiny data, and the real data in ../shared when present."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; the test is skipped where it is absent."""
    path = SHARED / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not present on this machine")
    return path


TINY_SUITE = {
    "name": "tiny",
    "dataset": {"name": "synthetic", "channels": 1, "image_size": 8, "num_classes": 3,
                "train_size": 96, "test_size": 30, "val_size": 24},
    "train": {"epochs": 2, "batch_size": 16},
    "seeds": 1,
    "device": "cpu",
    "matrix": {"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd", "adam"],
               "lr": [0.01, 0.1]},
}


@pytest.fixture
def write_suite(tmp_path):
    """Write a suite (the tiny one, updated by keyword sections) and return its path."""

    def write(data: dict | None = None, name: str = "suite.yaml", text: str | None = None,
              **sections) -> Path:
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
            return path
        doc = {**(data if data is not None else TINY_SUITE), **sections}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    return write
