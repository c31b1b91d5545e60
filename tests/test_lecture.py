"""The lecture suites: each is valid, has the size its header and docs/lecture.md state, and runs
end to end through the CLI when shrunk (CIFAR-10 replaced by synthetic 3×32² images)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.suite import expand

LECTURE = Path(__file__).resolve().parents[1] / "suites" / "lecture"
RUNS = {"keras_mnist": 6, "gd_regimes": 28, "optimizers": 330, "degradation": 4,
        "degradation_gpu": 4, "vanishing": 2, "data_parallel": 2}
runner = CliRunner()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_lecture_suite_is_valid_and_sized_as_documented(name):
    assert len(expand(cnnbench.load_suite(LECTURE / f"{name}.yaml"))) == RUNS[name]


def test_every_lecture_suite_is_listed_here():
    assert {p.stem for p in LECTURE.glob("*.yaml")} == set(RUNS)


SYNTHETIC_CIFAR = [arg for key, value in {
    "dataset.name": "synthetic", "dataset.channels": 3, "dataset.image_size": 32,
    "dataset.num_classes": 10, "dataset.train_size": 96, "dataset.test_size": 40,
    "dataset.val_size": 16, "dataset.subset": 64, "dataset.test_subset": 20, "train.epochs": 2,
}.items() for arg in ("--set", f"{key}={value}")]


def test_vanishing_suite_runs_and_grad_norms_reads_it(tmp_path):
    out = tmp_path / "vanishing"
    run = runner.invoke(app, ["run", str(LECTURE / "vanishing.yaml"), "--out", str(out),
                              *SYNTHETIC_CIFAR])
    assert run.exit_code == 0, run.output
    runs, _ = cnnbench.load_results(out)
    assert sorted(runs["model"]) == ["plain56", "resnet56"]
    assert (runs["test_size"] == 20).all() and (runs["train_size"] == 64).all()
    table = runner.invoke(app, ["grad-norms", str(out), "--format", "csv", "--plot",
                                str(tmp_path / "img")])
    assert table.exit_code == 0, table.output
    assert "plain56,0,1,56," in table.output and "resnet56,2," in table.output
    assert (tmp_path / "img" / "grad_norms.png").exists()
