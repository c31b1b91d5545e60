"""Per-epoch checkpoints, resume and graceful stop: a resumed run gives exactly the numbers of an
uninterrupted one; SIGTERM/SIGINT stop at a safe point with exit code 3; a second SIGINT at once."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import cnnbench
from cnnbench.execute.progress import PlainReporter
from cnnbench.results.store import ResultStore
from cnnbench.suite import expand
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.signals import EXIT_INTERRUPTED
from tests.helpers.suites import slow_model

ROOT = Path(__file__).resolve().parents[1]

# keras_cnn has dropout: resuming must also restore the global torch RNG, not only data order
RESUME_SUITE = {
    "dataset": {"name": "synthetic", "channels": 1, "image_size": 12, "num_classes": 3,
                "train_size": 48, "test_size": 30, "val_size": 16},
    "train": {"epochs": 4, "batch_size": 16},
    "matrix": {"model": ["keras_cnn"], "optimizer": [{"name": "adam"}], "lr": [0.003]},
}
METRICS = ["train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc", "lr",
           "step", "samples"]


class StopAfterEpoch(PlainReporter):
    """Sends this process a SIGTERM after epoch `at`, as Slurm would on pre-emption."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def epoch(self, spec, epoch, row) -> None:
        super().epoch(spec, epoch, row)
        if epoch == self.at:
            os.kill(os.getpid(), signal.SIGTERM)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.signals
def test_a_resumed_run_gives_exactly_the_numbers_of_an_uninterrupted_one(write_suite, tmp_path):
    suite = cnnbench.load_suite(write_suite(**RESUME_SUITE))
    whole = cnnbench.run_suite(suite, tmp_path / "whole")
    assert whole.statuses == {"ok": 1} and not whole.interrupted

    out = tmp_path / "resumed"
    first = cnnbench.run_suite(suite, out, reporter=StopAfterEpoch(2))
    assert first.interrupted and first.statuses == {"interrupted": 1}
    runs, history = cnnbench.load_results(out)
    assert runs.loc[0, "status"] == "interrupted" and runs.loc[0, "epochs_done"] == 2
    assert "stopped by SIGTERM during epoch 3" in runs.loc[0, "message"]
    run_id = runs.loc[0, "run_id"]
    assert ResultStore(out).checkpoint_path(run_id).exists()
    assert ResultStore(out).finished_ids() == {}  # interrupted: not done, so it resumes

    second = cnnbench.run_suite(suite, out)
    assert second.statuses == {"ok": 1} and not second.interrupted
    runs, history = cnnbench.load_results(out)
    expected_runs, expected_history = cnnbench.load_results(tmp_path / "whole")
    assert runs.loc[0, "resumed_from_epoch"] == 2
    assert runs.loc[0, "wall_s"] >= runs.loc[0, "train_s"] > 0
    assert not ResultStore(out).checkpoint_path(run_id).exists()  # removed once finished
    assert list(history["epoch"]) == [0, 1, 2, 3, 4]
    for column in METRICS:
        assert all(_same(a, b) for a, b in zip(history[column], expected_history[column])), column
    for column in ("train_loss", "val_acc", "test_loss", "test_acc", "best_val_acc", "steps"):
        assert _same(runs.loc[0, column], expected_runs.loc[0, column]), column


def test_checkpoint_of_another_run_or_damaged_is_ignored(tmp_path, write_suite):
    from cnnbench.execute.local import prepare_data
    from cnnbench.train.trainer import Trainer

    suite = cnnbench.load_suite(write_suite())
    spec = expand(suite)[0]
    trainer = Trainer(spec, prepare_data(suite.dataset_config, torch.device("cpu")))
    path = tmp_path / "checkpoints" / "c.pt"
    path.parent.mkdir()
    Checkpoint(path, spec.run_id).save({"trainer": trainer.state_dict(), "epoch": 1,
                                        "history": [{"epoch": 0}], "wall_s": 1.0,
                                        "start_time": 0.0})
    assert Checkpoint(path, spec.run_id).load()["epoch"] == 1
    assert Checkpoint(path, "another-run").load() is None
    path.write_bytes(b"not a checkpoint")
    assert Checkpoint(path, spec.run_id).load() is None
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temp files left


def _env(extra_path: str = "") -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), extra_path]))}


def _start(suite: Path, out: Path, extra_path: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cnnbench", "run", str(suite), "--out",
                             str(out)], env=_env(extra_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _cli(args: list[str], extra_path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnnbench", *args], env=_env(extra_path),
                          capture_output=True, text=True, timeout=120)


def _wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.subprocess
@pytest.mark.signals
def test_sigterm_stops_the_cli_with_exit_3_and_a_rerun_resumes(write_suite, tmp_path):
    # 6 steps of 0.1 s an epoch: the SIGTERM sent after epoch 1's checkpoint lands in epoch 2
    model = slow_model(tmp_path, sleep_s=0.1)
    suite = write_suite(matrix={"model": [model], "optimizer": ["sgd"], "lr": [0.01, 0.1]},
                        train={"epochs": 4, "batch_size": 16})
    out = tmp_path / "out"
    proc = _start(suite, out, extra_path=str(tmp_path))
    _wait_for(lambda: any(out.glob("checkpoints/*.pt")))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "SIGTERM received" in stderr and "re-run the same command to resume" in stderr
    runs, _ = cnnbench.load_results(out)
    assert list(runs["status"]) == ["interrupted"]  # the second run never started

    status = _cli(["status", str(out), "--suite", str(suite)], str(tmp_path))
    assert status.returncode == 0, status.stderr
    assert "interrupted: " in status.stdout and "has a checkpoint" in status.stdout
    assert "pending: " in status.stdout

    again = _cli(["run", str(suite), "--out", str(out)], str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "resumed from the checkpoint of epoch" in again.stdout + again.stderr
    runs, history = cnnbench.load_results(out)
    assert sorted(runs["status"]) == ["ok", "ok"] and runs["resumed_from_epoch"].max() >= 1
    assert len(history) == 2 * 5 and not history.duplicated(["run_id", "epoch"]).any()


@pytest.mark.subprocess
@pytest.mark.signals
def test_a_second_sigint_exits_at_once(write_suite, tmp_path):
    model = slow_model(tmp_path, sleep_s=60)  # a step that does not end soon
    suite = write_suite(matrix={"model": [model], "optimizer": ["sgd"], "lr": [0.1]})
    proc = _start(suite, tmp_path / "out", extra_path=str(tmp_path))
    _wait_for(lambda: (tmp_path / "slow_model.py.started").exists())
    started = time.time()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.time() - started < 20  # not after the 60 s step
    assert "SIGINT received" in stderr
