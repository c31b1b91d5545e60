"""Training one run: repeatability, divergence, the loss, full batch, history rows."""

from __future__ import annotations

import math

import pytest
import torch

from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, load_suite, validate_suite
from cnnbench.train.engine import train
from tests.helpers.suites import TINY_SUITE


def _specs(**sections):
    return expand(validate_suite({**TINY_SUITE, **sections}))


@pytest.fixture
def data():
    suite = validate_suite(TINY_SUITE)
    return prepare_data(suite.dataset_config, torch.device("cpu"))


def test_same_seed_gives_identical_numbers_on_cpu(data):
    spec = _specs()[0]
    a, b = train(spec, data), train(spec, data)
    assert a.history == [{**row, "elapsed_s": row2["elapsed_s"]}
                         for row, row2 in zip(b.history, a.history)]
    other = _specs(seeds=[1])[0]
    assert train(other, data).summary["train_loss"] != a.summary["train_loss"]


def test_history_rows_and_summary(data):
    spec = _specs()[0]
    result = train(spec, data)
    assert [r["epoch"] for r in result.history] == [0, 1, 2]
    steps_per_epoch = math.ceil(len(data.train) / 16)
    assert [r["step"] for r in result.history] == [0, steps_per_epoch, 2 * steps_per_epoch]
    assert result.history[-1]["samples"] == 2 * len(data.train)
    summary = result.summary
    assert summary["status"] == "ok" and summary["epochs_done"] == 2
    assert 0 <= summary["val_acc"] <= 1 and 0 <= summary["test_acc"] <= 1
    assert summary["samples_per_s"] == pytest.approx(summary["samples"] / summary["train_s"])
    assert summary["params"] == 8 * 8 * 16 + 16 + 16 * 3 + 3


def test_divergence_stops_the_run_early(data):
    spec = next(s for s in _specs(matrix={"model": ["mlp"], "optimizer": ["sgd"], "lr": [1e4]},
                                  train={"epochs": 5, "batch_size": 16}))
    result = train(spec, data)
    assert result.summary["status"] == "diverged"
    assert result.summary["epochs_done"] < 5
    assert "loss" in result.summary["message"]


def test_full_batch_takes_one_step_per_epoch(data):
    spec = _specs(train={"epochs": 2, "batch_size": "full"})[0]
    result = train(spec, data)
    assert [r["step"] for r in result.history] == [0, 1, 2]


def test_quickstart_suite_is_valid_and_sized():
    from pathlib import Path

    suite = load_suite(Path(__file__).resolve().parents[1] / "suites" / "quickstart.yaml")
    specs = expand(suite)
    assert len(specs) == 2 * 4 * 5
    assert {s.model for s in specs} == {"mlp", "keras_cnn"}
