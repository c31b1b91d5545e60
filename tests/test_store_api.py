"""Results on disk and the Python API of DESIGN.md."""

from __future__ import annotations

import pytest

import cnnbench
from cnnbench.data import DATASETS
from cnnbench.results.store import ResultStore
from cnnbench.suite import validate_suite
from tests.helpers.suites import TINY_SUITE

RUNS_COLUMNS = {"suite", "run_id", "model", "optimizer", "optimizer_name", "lr", "seed",
                "batch_size", "dataset", "device", "status", "message", "train_loss", "val_loss",
                "val_acc", "test_loss", "test_acc", "best_val_acc", "wall_s", "train_s",
                "samples_per_s", "torch_version", "device_name", "host", "git_commit",
                "start_time", "end_time", "params"}
HISTORY_COLUMNS = {"run_id", "epoch", "step", "samples", "elapsed_s", "lr", "train_loss",
                   "train_acc", "val_loss", "val_acc"}


def test_python_api_round_trip(write_suite, tmp_path):
    suite = cnnbench.load_suite(write_suite(), overrides=["train.epochs=1"])
    outcome = cnnbench.run_suite(suite, out=tmp_path / "r")
    assert outcome.ran == 4 and outcome.succeeded
    runs, history = cnnbench.load_results(tmp_path / "r")
    assert RUNS_COLUMNS <= set(runs.columns)
    assert HISTORY_COLUMNS <= set(history.columns)
    assert runs["val_acc"].between(0, 1).all()
    assert set(history["run_id"]) == set(runs["run_id"])
    assert (runs["hp_momentum"].dropna() == 0).all()  # sgd's resolved default is recorded


def test_create_model_and_optimizer():
    model = cnnbench.create_model("lenet5", in_channels=1, num_classes=10, image_size=28)
    opt = cnnbench.create_optimizer("momentum", model.parameters(), lr=0.05)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["lr"] == 0.05
    with pytest.raises(cnnbench.CnnbenchError, match="did you mean 'adam'"):
        cnnbench.create_optimizer("adamm", model.parameters())


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "abc", "status": "ok"}, [{"run_id": "abc", "epoch": 0}])
    store.write({"run_id": "abc", "status": "ok", "val_acc": 0.5}, [])
    assert [p.name.startswith("part-") for p in store.runs_dir.iterdir()] == [True]
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert store.read_summary("abc")["val_acc"] == 0.5
    assert store.finished_ids() == {"abc": "ok"}


def test_interrupted_runs_are_not_finished(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "x", "status": "interrupted"}, [])
    assert store.finished_ids() == {}


def test_mnist_mini_is_real_mnist_split_8k_2k():
    config = validate_suite({**TINY_SUITE, "dataset": "mnist-mini"}).dataset_config
    data = DATASETS.get("mnist-mini")(config, None)
    assert data.x_train.shape == (8000, 1, 28, 28) and data.x_test.shape == (2000, 1, 28, 28)
    assert data.x_train.dtype.name == "uint8"
    counts = [int((data.y_test == d).sum()) for d in range(10)]
    assert sum(counts) == 2000 and min(counts) > 150  # stratified: every digit present


def test_mnist_mini_matches_the_real_files(shared_data):
    import gzip

    import numpy as np

    raw = gzip.open(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz").read()
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)
    config = validate_suite({**TINY_SUITE, "dataset": "mnist-mini"}).dataset_config
    data = DATASETS.get("mnist-mini")(config, None)
    bundled = np.concatenate([data.x_train[:, 0], data.x_test[:, 0]])
    assert sorted(map(bytes, bundled)) == sorted(map(bytes, images))
