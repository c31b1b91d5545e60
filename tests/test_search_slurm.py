"""An lr search submitted to a real Slurm (the single-node cluster .ci/run starts): each round a
job array, a dependent job submitting the next, until the search is finished. Skipped where no
Slurm cluster is up."""

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
from cnnbench.suite.search import search_state
from cnnbench.suite.starts import read_starts
from tests.helpers.slurm import cluster_up
from tests.helpers.suites import TINY_SUITE

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _submit(path: Path, out: Path) -> subprocess.CompletedProcess:
    """`cnnbench submit` of the suite at `path` to the test cluster, as two shards."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "cnnbench", "submit", str(path), "--out",
                           str(out), "--partition", "debug", "--time", "00:10:00",
                           "--cpus-per-task", "1", "--mem", "1G", "--shards", "2"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    return done


def _events_until_the_end(out: Path, seconds: float) -> list[dict]:
    """The search's events in `submit.json`, once it finished or stalled."""
    deadline = time.time() + seconds
    while True:
        events = json.loads((out / "submit.json").read_text()).get("events", [])
        if events and events[-1]["event"] in ("finished", "stalled"):
            return events
        assert time.time() < deadline, f"the search did not finish on Slurm: {events}"
        time.sleep(1)


@pytest.mark.subprocess
@pytest.mark.skipif(not cluster_up(), reason="no Slurm cluster up (sbatch/sinfo)")
def test_a_search_runs_as_successive_job_arrays(write_suite, tmp_path):
    search = {"log": [0.003, 0.03], "num": 2, "expand": 1, "refine": 1, "confirm": 2}
    path = write_suite(matrix={**TINY_SUITE["matrix"], "lr": {"search": search}})
    out = tmp_path / "out"
    done = _submit(path, out)
    assert "a job after it submits the next" in " ".join(done.stdout.split())
    events = _events_until_the_end(out, 480)
    assert events[-1]["event"] == "finished", events
    runs, _ = cnnbench.load_results(out)
    state = search_state(cnnbench.load_suite(path), runs)
    assert state.finished
    rounds = [e for e in events if e["event"] == "round"]
    assert [e["round"] for e in rounds] == list(range(1, len(state.rounds) + 1))
    assert len(state.rounds) >= 3  # start grid, then at least a refinement and a confirmation
    assert sorted(runs["run_id"]) == sorted(s.run_id for s in state.specs)  # each run once
    assert sorted(runs["round"].unique()) == list(range(1, len(state.rounds) + 1))
    status = runner.invoke(app, ["status", str(out)])
    assert status.exit_code == 0, status.output
    assert f"lr search: {len(state.rounds)} round(s) so far, finished" in status.output


@pytest.mark.subprocess
@pytest.mark.skipif(not cluster_up(), reason="no Slurm cluster up (sbatch/sinfo)")
def test_an_auto_start_runs_its_range_test_in_a_job_before_round_1(write_suite, tmp_path):
    search = {"start": "auto", "expand": 0, "refine": 0, "confirm": 1}  # round 1 only
    path = write_suite(matrix={**TINY_SUITE["matrix"], "optimizer": ["sgd"],
                               "lr": {"search": search}})
    out = tmp_path / "out"
    done = _submit(path, out)
    assert "the lr range test of 1 group(s), then it submits round 1" in " ".join(
        done.stdout.split())
    events = _events_until_the_end(out, 300)
    assert [e["event"] for e in events] == ["range tests submitted", "range tests", "round",
                                            "finished"]
    (log,) = (out / "slurm").glob("*/range-tests/*_log.err")
    assert "lr search: range test of mlp" in log.read_text()  # it ran in the job
    (start,) = read_starts(out).values()
    runs, _ = cnnbench.load_results(out)
    assert sorted(runs["lr"]) == pytest.approx(list(start.values))
    assert (runs["round"] == 1).all() and events[2]["runs"] == len(start.values)
