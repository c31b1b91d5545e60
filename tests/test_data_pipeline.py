"""The device pipeline (augmentation, subsets), the `augment` suite key, and the data CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.data import ArrayDataset, Augment, DeviceData, resolve_augment
from cnnbench.data.device import STANDARD, augment_batch
from cnnbench.data.synthetic import make_synthetic
from cnnbench.errors import SuiteError
from cnnbench.suite import validate_suite
from tests.helpers.data import write_mnist
from tests.helpers.suites import TINY_SUITE

runner = CliRunner()


def _generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_augment_is_a_crop_of_the_padded_image_or_its_mirror():
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    out = augment_batch(x, STANDARD, _generator(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flipped = 0
    for i in range(len(x)):
        crops = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(9) for dx in range(9)]
        plain = any(torch.equal(out[i], c) for c in crops)
        mirrored = any(torch.equal(out[i], c.flip(2)) for c in crops)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 16 < flipped < 48  # about half are mirrored


def test_augment_is_seeded_and_varies_per_image():
    x = torch.randint(0, 256, (32, 1, 6, 6), dtype=torch.uint8)
    a = augment_batch(x, Augment(crop=2), _generator(1))
    assert torch.equal(a, augment_batch(x, Augment(crop=2), _generator(1)))
    assert not torch.equal(a, augment_batch(x, Augment(crop=2), _generator(2)))
    flipped = augment_batch(x, Augment(flip=True), _generator(1))
    assert all(torch.equal(f, i) or torch.equal(f, i.flip(2))
               for f, i in zip(flipped, x, strict=True))
    shifted = sum(not torch.equal(a[i], x[i]) for i in range(32))
    assert shifted > 20


def test_train_batches_augment_only_the_training_set():
    data = make_synthetic(channels=3, image_size=8, num_classes=2, train_size=40, test_size=8)
    plain = DeviceData(data, torch.device("cpu"), val_size=8)
    augmented = DeviceData(data, torch.device("cpu"), val_size=8, augment=STANDARD)
    xp, yp = next(plain.train_batches(32, _generator(0)))
    xa, ya = next(augmented.train_batches(32, _generator(0)))
    assert torch.equal(yp, ya) and not torch.equal(xp, xa)  # same order, other pixels
    test_plain = next(plain.eval_batches(plain.test, 8))[0]
    assert torch.equal(test_plain, next(augmented.eval_batches(augmented.test, 8))[0])


def test_augment_key_forms_and_defaults():
    def dataset(**extra):
        suite = validate_suite({**TINY_SUITE, "dataset": {"name": "synthetic", **extra}})
        return suite.dataset_config

    assert resolve_augment(dataset().augment, "mnist") == Augment()
    assert resolve_augment(dataset().augment, "cifar10") == STANDARD
    assert resolve_augment(dataset(augment="none").augment, "cifar10") == Augment()
    assert resolve_augment(dataset(augment="standard").augment, "mnist") == STANDARD
    assert resolve_augment(dataset(augment={"crop": 2}).augment, "x") == Augment(crop=2)
    with pytest.raises(SuiteError, match="augment"):
        dataset(augment="heavy")
    with pytest.raises(SuiteError, match="rotate"):
        dataset(augment={"crop": 4, "rotate": 10})


def test_subset_is_stratified_and_fixed():
    labels = np.repeat(np.arange(4), [40, 20, 20, 20])
    x = np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(2, 2)
    data = ArrayDataset("toy", x, labels, x[:8], labels[:8], ("a", "b", "c", "d"))
    first = DeviceData(data, torch.device("cpu"), val_size=20, subset=40)
    again = DeviceData(data, torch.device("cpu"), val_size=20, subset=40)
    assert len(first.train) == 40
    assert torch.bincount(first.train.y).tolist() == [16, 8, 8, 8]
    assert torch.bincount(first.val.y).tolist() == [8, 4, 4, 4]
    assert torch.equal(first.train.x, again.train.x)
    train_ids = set(first.train.x[:, 0, 0, 0].tolist())
    assert not train_ids & set(first.val.x[:, 0, 0, 0].tolist())


def test_test_subset_is_stratified_fixed_and_reaches_the_run(write_suite):
    labels = np.repeat(np.arange(2), [30, 10])
    x = np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(2, 2)
    data = ArrayDataset("toy", x, labels, x, labels, ("a", "b"))
    first = DeviceData(data, torch.device("cpu"), val_size=4, test_subset=8)
    again = DeviceData(data, torch.device("cpu"), val_size=4, test_subset=8)
    assert torch.bincount(first.test.y).tolist() == [6, 2]
    assert torch.equal(first.test.x, again.test.x)
    assert len(DeviceData(data, torch.device("cpu"), val_size=4, test_subset=100).test) == 40

    suite = write_suite(dataset={"name": "mnist-mini", "val_size": 50, "subset": 100,
                                 "test_subset": 60}, train={"epochs": 1, "batch_size": 50},
                        matrix={"model": [{"name": "mlp", "hidden": 8}], "optimizer": ["sgd"],
                                "lr": [0.1]})
    result = runner.invoke(app, ["run", str(suite), "--out", str(suite.parent / "out")])
    assert result.exit_code == 0, result.output
    runs, _ = cnnbench.load_results(suite.parent / "out")
    assert runs.loc[0, "test_size"] == 60 and runs.loc[0, "train_size"] == 100


def test_list_datasets_shows_where_each_is_found(tmp_path, monkeypatch):
    write_mnist(tmp_path / "mnist", gz=True)
    write_mnist(tmp_path / "kmnist", gz=True)
    (tmp_path / "kmnist" / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv("CNNBENCH_DATA", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "400")
    result = runner.invoke(app, ["list", "datasets"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines()
            if line.count("│") > 4}
    assert set(rows) >= {"mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100",
                         "imagefolder", "mnist-mini", "synthetic"}
    assert str(tmp_path / "mnist") in rows["mnist"]
    assert f"incomplete: 3 of 4 files in {tmp_path / 'kmnist'}" in rows["kmnist"]
    assert "not found" in rows["fashion-mnist"] and "not found" in rows["cifar10"]
    assert "50,000 train / 10,000 test" in rows["cifar10"] and "standard" in rows["cifar10"]


def test_run_reads_mnist_from_data_dir_and_augments(tmp_path, write_suite):
    write_mnist(tmp_path / "data" / "mnist", gz=False, n_train=60, n_test=20)
    suite = write_suite(dataset={"name": "mnist", "val_size": 10, "download": False,
                                 "augment": {"crop": 2, "flip": False}},
                        matrix={"model": [{"name": "mlp", "hidden": 8}], "optimizer": ["sgd"],
                                "lr": [0.01]}, train={"epochs": 1, "batch_size": 25})
    result = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "out"),
                                 "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    missing = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "out2"),
                                  "--data-dir", str(tmp_path / "elsewhere")])
    assert missing.exit_code != 0  # 2 once cli.UserError derives from typer's own click
    message = missing.output + str(missing.exception)
    assert f"in {tmp_path / 'elsewhere' / 'mnist'}/" in message
    assert "t10k-images-idx3-ubyte.gz" in message
