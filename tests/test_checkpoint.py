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

import torch
from typer.testing import CliRunner

import cnnbench
from cnnbench.checkpoint import Checkpoint
from cnnbench.cli import app
from cnnbench.progress import PlainReporter
from cnnbench.signals import EXIT_INTERRUPTED
from cnnbench.store import ResultStore
from cnnbench.suite import expand

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()

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
    from cnnbench import engine
    from cnnbench.executors import prepare_data

    suite = cnnbench.load_suite(write_suite())
    spec = expand(suite)[0]
    trainer = engine._Trainer(spec, prepare_data(suite.dataset_config, torch.device("cpu")))
    path = tmp_path / "checkpoints" / "c.pt"
    path.parent.mkdir()
    Checkpoint(path, spec.run_id).save(trainer, [{"epoch": 0}], epoch=1, wall_s=1.0,
                                       start_time=0.0)
    assert Checkpoint(path, spec.run_id).load()["epoch"] == 1
    assert Checkpoint(path, "another-run").load() is None
    path.write_bytes(b"not a checkpoint")
    assert Checkpoint(path, spec.run_id).load() is None
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]  # no temp files left


def _start(suite: Path, out: Path, extra_path: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), extra_path]))}
    return subprocess.Popen([sys.executable, "-m", "cnnbench", "run", str(suite), "--out",
                             str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


def test_sigterm_stops_the_cli_with_exit_3_and_a_rerun_resumes(write_suite, tmp_path):
    suite = write_suite(matrix={"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd"],
                                "lr": [0.01, 0.1]}, train={"epochs": 8, "batch_size": 8})
    out = tmp_path / "out"
    proc = _start(suite, out)
    _wait_for(lambda: any(out.glob("checkpoints/*.pt")))
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED, stderr
    assert "SIGTERM received" in stderr and "re-run the same command to resume" in stderr
    runs, _ = cnnbench.load_results(out)
    assert list(runs["status"]) == ["interrupted"]  # the second run never started

    status = runner.invoke(app, ["status", str(out), "--suite", str(suite)])
    assert status.exit_code == 0, status.output
    assert "interrupted: " in status.output and "has a checkpoint" in status.output
    assert "pending: " in status.output

    again = runner.invoke(app, ["run", str(suite), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "resumed from the checkpoint of epoch" in again.output
    runs, history = cnnbench.load_results(out)
    assert sorted(runs["status"]) == ["ok", "ok"] and runs["resumed_from_epoch"].max() >= 1
    assert len(history) == 2 * 9 and not history.duplicated(["run_id", "epoch"]).any()


def test_a_second_sigint_exits_at_once(write_suite, tmp_path):
    (tmp_path / "slow_models.py").write_text(
        "import time\nimport torch.nn as nn\n\n"
        "class Slow(nn.Module):\n"
        "    def __init__(self, in_channels=1, num_classes=3, image_size=8):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)\n\n"
        "    def forward(self, x):\n"
        "        if self.training:\n"
        "            open(__file__ + '.started', 'w').close()\n"
        "            time.sleep(60)  # a step that does not end soon\n"
        "        return self.fc(x.flatten(1))\n")
    suite = write_suite(matrix={"model": ["slow_models:Slow"], "optimizer": ["sgd"],
                                "lr": [0.1]})
    proc = _start(suite, tmp_path / "out", extra_path=str(tmp_path))
    _wait_for(lambda: (tmp_path / "slow_models.py.started").exists())
    started = time.time()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.time() - started < 20  # not after the 60 s step
    assert "SIGINT received" in stderr
