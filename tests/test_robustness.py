"""Failure modes: bad input never runs anything, faults are recorded and the suite goes on,
results survive kill -9, a full disk or a vanished folder."""

from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.execute.progress import PlainReporter
from cnnbench.results.store import ResultStore
from cnnbench.suite import expand, validate_suite
from tests.helpers.suites import TINY_SUITE

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]

FAULTY_MODELS = """
import time
import torch
import torch.nn as nn


class Faulty(nn.Module):
    def __init__(self, in_channels=1, num_classes=3, image_size=8, fault="none"):
        super().__init__()
        self.fault = fault
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        if self.fault == "memory":
            raise MemoryError("host out of memory")
        if self.fault == "cuda_oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if self.fault == "hang":
            time.sleep(60)
        if self.fault == "error":
            raise ValueError("bad shape somewhere")
        return self.fc(x.flatten(1))
"""


@pytest.fixture
def faulty(tmp_path, monkeypatch):
    (tmp_path / "faulty_models.py").write_text(FAULTY_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return lambda fault: {"name": "faulty_models:Faulty", "fault": fault}


def _run(write_suite, tmp_path, models, *extra, **sections):
    matrix = {"model": models, "optimizer": ["sgd"], "lr": [0.1]}
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(write_suite(matrix=matrix, **sections)), "--out",
                                 str(out), *extra])
    return result, out


def test_oom_is_recorded_and_the_next_run_proceeds(write_suite, tmp_path, faulty):
    result, out = _run(write_suite, tmp_path, [faulty("memory"), faulty("cuda_oom"), "mlp"])
    assert result.exit_code == 1
    runs, _ = cnnbench.load_results(out)
    assert sorted(runs["status"]) == ["ok", "oom", "oom"]
    messages = " ".join(runs["message"].dropna())
    assert "MemoryError: host out of memory" in messages and "CUDA out of memory" in messages


def test_a_hanging_run_times_out(write_suite, tmp_path, faulty):
    result, out = _run(write_suite, tmp_path, [faulty("hang")],
                       train={"epochs": 1, "batch_size": 16, "time_limit_s": 2})
    runs, _ = cnnbench.load_results(out)
    hung = runs.iloc[0]
    assert hung["status"] == "timeout" and "time_limit_s=2" in hung["message"]
    assert hung["wall_s"] < 60  # stopped inside the 60 s sleep, not after it
    assert math.isnan(hung["flops_per_sample"])  # counting them ran the model: bounded too
    assert result.exit_code == 1


def test_fail_fast_stops_at_the_first_failure(write_suite, tmp_path, faulty):
    result, out = _run(write_suite, tmp_path, [faulty("error"), "mlp"], "--fail-fast")
    assert result.exit_code == 1 and "--fail-fast" in result.output
    runs, _ = cnnbench.load_results(out)
    assert list(runs["status"]) == ["error"]


def test_exclude_or_include_that_does_nothing_warns(write_suite):
    path = write_suite(exclude=[{"model": "lenet5"}],
                       include=[{"model": {"name": "mlp", "hidden": 16}, "optimizer": "sgd",
                                 "lr": 0.1}])
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0
    assert "exclude[0] {'model': 'lenet5'} matches no run" in result.output
    assert "include[0]" in result.output and "adds no run" in result.output


def test_unwritable_output_folder_is_a_clear_error(write_suite, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["run", str(write_suite()), "--out", str(blocker / "out")])
    assert result.exit_code == 2 and "cannot write results to" in result.output


def test_disk_full_leaves_no_partial_file(write_suite, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq, "write_table", full)
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(write_suite()), "--out", str(out)])
    assert result.exit_code == 2 and "No space left on device" in result.output
    assert list((out / "runs").iterdir()) == []


def test_results_folder_vanishing_mid_suite(write_suite, tmp_path):
    import shutil

    out = tmp_path / "out"

    class Vanisher(PlainReporter):
        def run_started(self, spec):
            super().run_started(spec)
            if self.index == 2:
                shutil.rmtree(out)

    with pytest.raises(CnnbenchError, match="cannot write the result"):
        cnnbench.run_suite(cnnbench.load_suite(write_suite()), out, reporter=Vanisher())
    assert not out.exists()


def _finished(out: Path) -> int:
    return len(ResultStore(out).finished_ids()) if (out / "runs").is_dir() else 0


@pytest.mark.subprocess
@pytest.mark.signals
def test_kill_9_mid_suite_then_rerun_loses_and_duplicates_nothing(write_suite, tmp_path):
    suite = write_suite(matrix={"model": [{"name": "mlp", "hidden": 16}],
                                "optimizer": ["sgd", "adam", "rmsprop"],
                                "lr": [0.001, 0.01, 0.1]},
                        train={"epochs": 3, "batch_size": 8})
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "cnnbench", "run", str(suite), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and _finished(out) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = _finished(out)
    assert 2 <= finished_before < 9, "the suite must be killed part-way"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{finished_before} already finished" in again.stderr
    runs, history = cnnbench.load_results(out)
    assert len(runs) == 9 and runs["run_id"].is_unique
    assert len(history) == (runs["epochs_done"] + 1).sum()  # no duplicated history rows
    assert not history.duplicated(["run_id", "epoch"]).any()
    assert set(runs["run_id"]) == {s.run_id for s in expand(cnnbench.load_suite(suite))}


# ─── property: any document either loads as a suite or raises our error ──────────────────────

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-0123456789", min_size=0, max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    names)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(names, inner, max_size=3)), max_leaves=8)
known_names = st.sampled_from(["mlp", "keras_cnn", "lenet5", "sgd", "adam", "momentum",
                               "synthetic", "mnist-mini", "adamm", "full", "constant"])
field_values = st.one_of(values, known_names, st.lists(st.one_of(known_names, values), max_size=3))
documents = st.fixed_dictionaries(
    {},
    optional={key: field_values for key in
              ("name", "dataset", "train", "seeds", "device", "matrix", "include", "exclude",
               "probes", "bogus")},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents, matrix=st.fixed_dictionaries(
    {"model": st.lists(st.one_of(known_names, values), max_size=2),
     "optimizer": st.lists(st.one_of(known_names, values), max_size=2)},
    optional={"lr": field_values, "batch_size": field_values}))
def test_any_document_loads_or_raises_our_error(doc, matrix):
    for candidate in (doc, {**TINY_SUITE, **doc}, {**TINY_SUITE, "matrix": matrix}):
        try:
            expand(validate_suite(candidate))
        except CnnbenchError:
            pass


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_file_loads_or_raises_our_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("h") / "suite.yaml"
    path.write_text(text)
    try:
        cnnbench.load_suite(path)
    except CnnbenchError:
        pass


def test_yaml_round_trip_of_tiny_suite_is_valid(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(TINY_SUITE))
    assert len(expand(cnnbench.load_suite(path))) == 4
