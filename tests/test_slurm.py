"""`cnnbench submit` on a real Slurm (the single-node cluster .ci/run starts from
../shared/slurm/slurm-ci-up.sh): a job array writes every run once; a task cancelled mid-run
resumes from its checkpoint when resubmitted. Skipped where there is no Slurm cluster up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.execute.slurm import time_minutes
from cnnbench.suite import expand
from cnnbench.suite.shards import shard
from tests.helpers.slurm import cluster_up
from tests.helpers.suites import slow_model

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


slurm = pytest.mark.skipif(not cluster_up(), reason="no Slurm cluster up (sbatch/sinfo)")


def _submit(suite: Path, out: Path, shards: int, *extra: str) -> str:
    """`cnnbench submit` as a user types it; the jobs import this checkout and the suite's
    folder (PYTHONPATH, which sbatch passes on)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(suite.parent)]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnbench", "submit", str(suite), "--out",
                           str(out), "--partition", "debug", "--time", "00:10:00",
                           "--cpus-per-task", "1", "--mem", "1G", "--shards", str(shards),
                           *extra], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return json.loads((out / "submit.json").read_text())["job_id"]


def _wait_gone(job: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True,
                         text=True).stdout.strip():
        assert time.time() < deadline, f"Slurm job {job} still queued after {timeout} s"
        time.sleep(0.2)


@pytest.mark.subprocess
@slurm
def test_a_job_array_writes_every_run_exactly_once(write_suite, tmp_path):
    suite = write_suite(matrix={"model": [{"name": "mlp", "hidden": 16}],
                                "optimizer": ["sgd", "momentum"], "lr": [0.01, 0.03, 0.1]},
                        train={"epochs": 2, "batch_size": 16})
    out = tmp_path / "out"
    job = _submit(suite, out, 3)
    _wait_gone(job)
    runs, history = cnnbench.load_results(out)
    expected = {s.run_id for s in expand(cnnbench.load_suite(suite))}
    assert sorted(runs["run_id"]) == sorted(expected)  # every run, each exactly once
    assert set(runs["status"]) == {"ok"}
    assert not history.duplicated(["run_id", "epoch"]).any()
    logs = sorted((out / "slurm").glob("*/*_log.err"))
    assert len(logs) == 3  # the logs of the 3 array tasks land in the results folder
    assert {f"shard {k}/3" for k in (1, 2, 3)} <= {
        line.split(", ")[0].split(": ")[-1] for log in logs for line in log.read_text().splitlines()
        if "Slurm array task" in line}
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0 and f"Slurm job {job}" in status.output


@pytest.mark.subprocess
@pytest.mark.signals
@slurm
def test_scancel_mid_run_then_resubmit_resumes_from_the_checkpoint(write_suite, tmp_path,
                                                                   monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    # ≥ 12 steps × 20 ms per epoch: still mid-run when scancel's SIGTERM arrives, on any machine
    suite = write_suite(matrix={"model": [slow_model(tmp_path, 0.02)],
                                "optimizer": ["sgd"], "lr": [0.01, 0.1]},
                        train={"epochs": 12, "batch_size": 8})
    out = tmp_path / "out"
    specs = expand(cnnbench.load_suite(suite))
    target = shard(specs, 1, 2)[0].run_id  # the one run of array task 0
    job = _submit(suite, out, 2)
    checkpoint = out / "checkpoints" / f"{target}.pt"
    deadline = time.time() + 120
    while not checkpoint.exists():
        assert time.time() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    subprocess.run(["scancel", f"{job}_0"], check=True)  # SIGTERM, as on pre-emption
    _wait_gone(job)
    runs, _ = cnnbench.load_results(out)
    cancelled = runs.set_index("run_id").loc[target]
    assert cancelled["status"] == "interrupted", cancelled["message"]
    assert 1 <= cancelled["epochs_done"] < 12 and checkpoint.exists()
    status = runner.invoke(app, ["status", str(out)])
    print(status.output)
    assert "interrupted: " + target in status.output

    job = _submit(suite, out, 2)  # a fresh submitit folder: job ids may repeat
    _wait_gone(job)
    runs, history = cnnbench.load_results(out)
    assert sorted(runs["run_id"]) == sorted(s.run_id for s in specs)
    assert set(runs["status"]) == {"ok"}
    resumed = runs.set_index("run_id").loc[target]
    assert resumed["resumed_from_epoch"] >= cancelled["epochs_done"]
    assert len(history) == 2 * 13 and not history.duplicated(["run_id", "epoch"]).any()
    assert len(list((out / "slurm").iterdir())) == 2
    status = runner.invoke(app, ["status", str(out)])
    print(status.output)


def test_dry_run_prints_the_sbatch_script(write_suite, tmp_path):
    pytest.importorskip("submitit")
    out = tmp_path / "out"
    result = runner.invoke(app, [
        "submit", str(write_suite()), "--out", str(out), "--partition", "gpu", "--time",
        "02:00:00", "--gpus-per-task", "1", "--cpus-per-task", "8", "--mem", "32G",
        "--array-parallelism", "2", "--shards", "4", "--dry-run"])
    assert result.exit_code == 0, result.output
    script = result.output
    for line in ("#SBATCH --array=0-3%2", "#SBATCH --time=120", "#SBATCH --mem=32G",
                 "#SBATCH --gpus-per-task=1", "#SBATCH --cpus-per-task=8",
                 "#SBATCH --partition=gpu", "#SBATCH --job-name=cnnbench-tiny",
                 f"#SBATCH --output={out.resolve()}/slurm/", "-m submitit.core._submit"):
        assert line in script, line
    assert not out.exists()  # a dry run writes nothing


def test_submit_without_slurm_is_a_clear_error(write_suite, tmp_path, monkeypatch):
    pytest.importorskip("submitit")
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["submit", str(write_suite()), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "sbatch/srun not found on PATH" in result.output


def test_slurm_times_and_sizes():
    assert [time_minutes(t) for t in ("02:00:00", "90", "1-12:00:00", "10:30", "0:0:1")] == \
        [120, 90, 2160, 11, 1]
    with pytest.raises(CnnbenchError, match="not a Slurm time"):
        time_minutes("two hours")
    result = runner.invoke(app, ["submit", "x.yaml", "--out", "o", "--mem", "lots"])
    assert result.exit_code == 2
