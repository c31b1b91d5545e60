"""The command line end to end: run, plan, validate, list, report, schema, and their errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnbench import load_results
from cnnbench.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_run_writes_results_reports_and_resumes(write_suite, tmp_path):
    suite, out = write_suite(), tmp_path / "out"
    result = invoke("run", suite, "--out", out)
    assert result.exit_code == 0, result.output
    assert "best learning rate" in result.output and "mlp" in result.output
    runs, history = load_results(out)
    assert len(runs) == 4 and set(runs["status"]) == {"ok"}
    assert len(history) == 4 * 3  # epoch 0 (at init) + 2 epochs per run
    files = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    assert len(files) == 2  # one writer: a runs part and a history part

    again = invoke("run", suite, "--out", out)
    assert again.exit_code == 0
    assert "4 already finished" in again.output and "0 ran, 4 skipped" in again.output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == files

    forced = invoke("run", suite, "--out", out, "--rerun")
    assert forced.exit_code == 0 and "4 ran, 0 skipped" in forced.output
    rerun, _ = load_results(out)
    assert len(rerun) == 4 and rerun["written_at"].min() > runs["written_at"].max()


def test_set_overrides_and_default_out_folder(write_suite, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", write_suite(), "--set", "train.epochs=1", "--set", "seeds=2",
                    "--set", "matrix.lr=[0.05]")
    assert result.exit_code == 0, result.output
    runs, history = load_results(tmp_path / "results" / "tiny")
    assert sorted(runs["seed"]) == [0, 0, 1, 1] and set(runs["lr"]) == {0.05}
    assert set(history["epoch"]) == {0, 1}


def test_dry_run_and_plan_train_nothing(write_suite, tmp_path):
    out = tmp_path / "out"
    for command in (["run", write_suite(), "--dry-run", "--out", out],
                    ["plan", write_suite(), "--out", out]):
        result = invoke(*command)
        assert result.exit_code == 0, result.output
        assert "4 run(s)" in result.output and "pending" in result.output
    assert not (out / "runs").exists()


def test_plan_marks_finished_runs(write_suite, tmp_path):
    out = tmp_path / "out"
    invoke("run", write_suite(), "--out", out, "--set", "matrix.optimizer=[sgd]")
    result = invoke("plan", write_suite(), "--out", out)
    assert result.output.count("ok") == 2 and result.output.count("pending") == 2


def test_validate(write_suite, tmp_path):
    good = invoke("validate", write_suite(), ROOT / "suites" / "quickstart.yaml")
    assert good.exit_code == 0 and "4 run(s)" in good.output and "40 run(s)" in good.output
    bad = write_suite(name="bad.yaml", text="name: t\ndataset: synthetic\nmatrix:\n"
                                            "  model: [mlp]\n  optimizer: [adamm]\n")
    result = invoke("validate", bad)
    assert result.exit_code == 2
    assert "bad.yaml:5: matrix.optimizer[0]: unknown optimizer 'adamm' — did you mean 'adam'" in (
        result.output)
    assert "Traceback" not in result.output


def test_cuda_asked_for_where_there_is_none(write_suite):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = invoke("run", write_suite(), "--device", "cuda")
    assert result.exit_code == 2 and "no CUDA device" in result.output


@pytest.mark.parametrize("what, expected", [
    ("models", ["keras_cnn", "34,826", "lenet5", "61,706", "mlp", "101,770"]),
    ("optimizers", ["adam", "momentum=0.9", "nesterov=True", "adadelta"]),
    ("datasets", ["mnist-mini", "synthetic"]),
])
def test_list(what, expected):
    result = runner.invoke(app, ["list", what], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in expected:
        assert text in result.output


def test_list_unknown_kind():
    result = invoke("list", "widgets")
    assert result.exit_code == 2
    assert "choose one of: suites, models, optimizers, datasets" in result.output


def test_schema_is_json_schema_of_the_suite():
    result = invoke("schema")
    schema = json.loads(result.output)
    assert schema["title"] == "cnnbench suite"
    assert {"name", "dataset", "train", "matrix", "seeds"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_report_command(write_suite, tmp_path):
    out = tmp_path / "out"
    invoke("run", write_suite(), "--out", out)
    result = invoke("report", out)
    assert result.exit_code == 0 and "best learning rate" in result.output
    missing = invoke("report", tmp_path / "nothing")
    assert missing.exit_code == 2 and "no results" in missing.output


def test_failing_run_is_recorded_and_the_suite_goes_on(write_suite, tmp_path, monkeypatch):
    module = tmp_path / "broken_models.py"
    module.write_text(
        "import torch.nn as nn\n\n"
        "class Explodes(nn.Module):\n"
        "    def __init__(self, in_channels=1, num_classes=10, image_size=8):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        raise RuntimeError('boom in forward')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    matrix = {"model": ["broken_models:Explodes", "mlp"], "optimizer": ["sgd"], "lr": [0.1]}
    out = tmp_path / "out"
    result = invoke("run", write_suite(matrix=matrix), "--out", out)
    assert result.exit_code == 1, result.output
    runs, _ = load_results(out)
    statuses = dict(zip(runs["model"], runs["status"]))
    assert statuses == {"broken_models:Explodes": "error", "mlp": "ok"}
    message = runs.loc[runs["model"] == "broken_models:Explodes", "message"].item()
    assert "RuntimeError: boom in forward" in message
    log = Path(message.split("traceback: ")[1].rstrip(")"))
    assert "Traceback" in log.read_text()


@pytest.mark.subprocess
def test_python_dash_m_entry_point(write_suite, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "cnnbench", "validate", str(write_suite())],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    bad = subprocess.run([sys.executable, "-m", "cnnbench", "run", str(tmp_path / "none.yaml")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
