"""What the ensemble tests share: a tiny fp64 suite and the history comparison of a member with
its run alone."""

from __future__ import annotations

import math

import pytest

# 32 training images of 8×8 in batches of 16: 2 steps an epoch, 4 in all
SUITE = {
    "name": "ens",
    "dataset": {"name": "synthetic", "channels": 1, "image_size": 8, "num_classes": 3,
                "train_size": 40, "test_size": 8, "val_size": 8},
    "train": {"epochs": 2, "batch_size": 16, "schedule": {"name": "cosine"},
              "precision": "fp64"},
    "seeds": 1,
    "device": "cpu",
    "probes": [],
    "matrix": {"model": ["mlp"], "optimizer": ["sgd"], "lr": [0.05]},
}


def assert_same_history(seq, ens, tol):
    assert [r["epoch"] for r in seq] == [r["epoch"] for r in ens]
    for a, b in zip(seq, ens):
        assert a.keys() == b.keys()
        for key in a:
            if key == "elapsed_s":  # a time: the ensemble's share, not the run's own
                continue
            if isinstance(a[key], float) and math.isnan(a[key]):
                assert math.isnan(b[key]), key
            elif isinstance(a[key], float):
                assert b[key] == pytest.approx(a[key], rel=tol, abs=tol), (key, a["epoch"])
            else:
                assert a[key] == b[key], key
