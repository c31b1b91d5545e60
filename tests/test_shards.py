"""Shards and local workers: a stable split that covers every run once; shards running as
parallel processes on one folder give exactly the results of one unsharded run, survive kill -9,
and can be read while they write."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.suite import expand
from cnnbench.suite.shards import parse_shard, shard, shard_from_env
from tests.helpers.suites import slow_model

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
MATRIX = {"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd", "momentum"],
          "lr": [0.003, 0.01, 0.03]}
COMPARED = ["run_id", "status", "epochs_done", "steps", "train_loss", "val_loss", "val_acc",
            "test_loss", "test_acc", "best_val_acc"]


@pytest.fixture
def suite_file(write_suite):
    return write_suite(matrix=MATRIX, train={"epochs": 2, "batch_size": 8})


def test_shards_cover_every_run_once_balanced_and_stable(suite_file):
    specs = expand(cnnbench.load_suite(suite_file))
    shuffled = random.Random(0).sample(specs, len(specs))
    for n in range(1, len(specs) + 2):
        parts = [shard(specs, k, n) for k in range(1, n + 1)]
        ids = [s.run_id for part in parts for s in part]
        assert sorted(ids) == sorted(s.run_id for s in specs)  # each run in exactly one shard
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert parts == [shard(shuffled, k, n) for k in range(1, n + 1)]  # order-independent
    # round-robin over the sorted runs: each optimizer lands in both shards
    assert {s.optimizer for s in shard(specs, 1, 2)} == {"sgd", "momentum"}


@pytest.mark.parametrize("text", ["0/3", "4/3", "1", "a/b", "1/0", "-1/2"])
def test_bad_shard_is_a_clear_error(text, suite_file):
    with pytest.raises(CnnbenchError, match="is not K/N"):
        parse_shard(text)
    result = runner.invoke(app, ["run", str(suite_file), "--shard", text, "--dry-run"])
    assert result.exit_code == 2 and "is not K/N with 1 ≤ K ≤ N" in result.output


def test_shard_comes_from_the_slurm_array_task(suite_file):
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "0"}) == (1, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "5"}) == (3, 4)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2"}) == (3, 4)
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}
    result = runner.invoke(app, ["run", str(suite_file), "--dry-run"], env=env)
    assert result.exit_code == 0, result.output
    assert "shard 2/3 from Slurm array task" in result.output and "2 run(s)" in result.output
    explicit = runner.invoke(app, ["run", str(suite_file), "--dry-run", "--shard", "1/6"], env=env)
    assert "shard 1/6 from --shard: 1 of 6 run(s)" in explicit.output


def _cmd(suite_file, out, *extra):
    return [sys.executable, "-m", "cnnbench", "run", str(suite_file), "--out", str(out), *extra]


def _frame(out):
    runs, history = cnnbench.load_results(out)
    return runs[COMPARED].sort_values("run_id").reset_index(drop=True), history


@pytest.mark.subprocess
@pytest.mark.signals
def test_parallel_shards_with_kill_9_equal_one_unsharded_run(write_suite, tmp_path,
                                                             monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    suite_file = write_suite(matrix={**MATRIX, "model": [slow_model(tmp_path, 0.005)]},
                             train={"epochs": 4, "batch_size": 8})
    whole = tmp_path / "whole"
    cnnbench.run_suite(cnnbench.load_suite(suite_file), whole)
    out = tmp_path / "sharded"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
           "OMP_NUM_THREADS": "1"}
    procs = {k: subprocess.Popen(_cmd(suite_file, out, "--shard", f"{k}/2"), env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for k in (1, 2)}
    first = {s.run_id for s in shard(expand(cnnbench.load_suite(suite_file)), 1, 2)}
    deadline = time.time() + 240
    reads, finished = 0, set()
    while procs[1].poll() is None and time.time() < deadline:
        if (out / "runs").is_dir():  # readers see only whole files while shards write
            runs, _ = cnnbench.load_results(out)
            reads += 1
            ids = list(runs["run_id"]) if not runs.empty else []
            assert len(ids) == len(set(ids))
            finished = first & set(ids)
            running = {p.stem for p in out.glob("checkpoints/*.pt")} & (first - finished)
            if finished and running:  # one run of shard 1 done, another mid-way
                procs[1].send_signal(signal.SIGKILL)  # node failure: no chance to clean up
                break
        time.sleep(0.02)
    for proc in procs.values():
        proc.wait(timeout=240)
    assert procs[1].returncode == -signal.SIGKILL, "shard 1 must be killed part-way"
    assert procs[2].returncode == 0 and reads >= 1
    # rerun of the killed shard: finished runs are skipped, the killed one resumes
    again = subprocess.run(_cmd(suite_file, out, "--shard", "1/2"), env=env,
                           capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"{len(finished)} already finished" in again.stderr
    assert "resumed from the checkpoint of epoch" in again.stderr
    sharded, history = _frame(out)
    expected, expected_history = _frame(whole)
    assert sharded.equals(expected)  # the same runs, the same numbers, each once
    assert len(history) == len(expected_history)
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert not list(out.glob("runs/.*.tmp")) and not list(out.glob("checkpoints/*"))


def test_workers_give_the_results_of_a_sequential_run(suite_file, tmp_path):
    cnnbench.run_suite(cnnbench.load_suite(suite_file), tmp_path / "seq")
    result = runner.invoke(app, ["run", str(suite_file), "--out", str(tmp_path / "par"),
                                 "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "2 worker processes, 1 torch thread(s) each" in result.output
    assert _frame(tmp_path / "par")[0].equals(_frame(tmp_path / "seq")[0])


def test_rerun_failed_retries_error_runs_only(write_suite, tmp_path, monkeypatch):
    (tmp_path / "bad_models.py").write_text(
        "import torch.nn as nn\n\n"
        "def broken(in_channels=1, num_classes=3, image_size=8):\n"
        "    return nn.Linear(7, num_classes)  # wrong input size: every step raises\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    suite = write_suite(matrix={"model": ["bad_models:broken", {"name": "mlp", "hidden": 8}],
                                "optimizer": ["sgd"], "lr": [0.1]}, train={"epochs": 1,
                                                                           "batch_size": 16})
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(suite), "--out", str(out)]).exit_code == 1
    plain = runner.invoke(app, ["run", str(suite), "--out", str(out)])
    assert "0 ran, 2 skipped" in plain.output
    retried = runner.invoke(app, ["run", str(suite), "--out", str(out), "--rerun-failed"])
    assert retried.exit_code == 1 and "1 ran, 1 skipped" in retried.output
