"""lr searches that start from the lr range test (`start: auto`): the start's bad input, round 1
read from the test's record (pending until it exists), the record written once and reused, and
real tiny runs through the CLI — local, resumed and sharded."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import cnnbench
from cnnbench.cli import app
from cnnbench.results.files import atomic_write
from cnnbench.suite import load_suite
from cnnbench.suite.search import search_state
from cnnbench.suite.starts import GRID_POINTS, Start, read_starts
from tests.helpers.suites import TINY_SUITE

runner = CliRunner()
AUTO = {"start": "auto", "expand": 1, "refine": 1, "confirm": 2}


def _path(write_suite, search: dict | None = None, **sections):
    """The tiny suite, one epoch, sgd's lr searched (`AUTO` unless `search` is given)."""
    matrix = {**TINY_SUITE["matrix"], "optimizer": ["sgd"], "lr": {"search": search or AUTO},
              **sections.pop("matrix", {})}
    return write_suite(matrix=matrix, train={"epochs": 1, "batch_size": 16}, **sections)


@pytest.fixture
def trained(monkeypatch) -> list[str]:
    """The models of the range tests actually trained (each call of `range_test`)."""
    import cnnbench.tools.lr_find as lr_find

    calls: list[str] = []
    real = lr_find.range_test

    def counted(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(lr_find, "range_test", counted)
    return calls


@pytest.mark.parametrize(("search", "message"), [
    ({**AUTO, "log": [1e-3, 1e-1]}, "give one start grid, not both log and start"),
    ({**AUTO, "values": [0.01, 0.1]}, "give one start grid, not both values and start"),
    ({**AUTO, "num": 5}, "num goes with log; start: auto takes the range test's grid"),
    ({**AUTO, "start": "guess"}, "start: Input should be 'auto'"),
])
def test_start_auto_beside_another_start_is_exit_2_with_file_and_line(write_suite, search,
                                                                      message):
    path = _path(write_suite, search)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and message in result.output
    assert f"{path}:" in result.output and "Traceback" not in result.output


def test_start_auto_validates_and_its_budget_counts_the_grid_to_come(write_suite):
    path = _path(write_suite)
    ok = runner.invoke(app, ["validate", str(path)])
    assert ok.exit_code == 0 and "0 run(s) and the lr range test of 1 group(s)" in ok.output
    small = runner.invoke(app, ["plan", str(path), "--set", "matrix.lr.search.max_runs=4"])
    assert small.exit_code == 2
    assert f"search max_runs 4 is below its start grid's {GRID_POINTS} point(s)" in small.output
    full_batch = _path(write_suite, matrix={"batch_size": ["full"]})
    full = runner.invoke(app, ["validate", str(full_batch)])
    assert full.exit_code == 2 and "with batch_size full give the start grid" in full.output


def test_round_1_waits_for_the_record_and_is_read_from_it(write_suite):
    suite = load_suite(_path(write_suite))
    state = search_state(suite)
    (test,) = state.pending
    assert not state.finished and state.rounds == [[]] and state.groups[0].pending
    started = search_state(suite, starts={test.key: Start((0.01, 0.0316, 0.1))})
    assert not started.pending and [s.lr for s in started.current] == [0.01, 0.0316, 0.1]
    failed = search_state(suite, starts={test.key: Start((), message="no finite loss")})
    assert failed.finished and failed.groups[0].stop == "range test: no finite loss"


def test_a_record_already_there_is_kept(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("first")
    assert not atomic_write(target, lambda f: f.write(b"second"), "record", "",
                            keep_existing=True)
    assert target.read_text() == "first" and list(tmp_path.iterdir()) == [target]  # no temp
    fresh = tmp_path / "fresh.json"
    assert atomic_write(fresh, lambda f: f.write(b"mine"), "record", "", keep_existing=True)
    assert fresh.read_text() == "mine"


def test_start_auto_runs_its_range_test_once_and_resumes(write_suite, tmp_path, trained):
    path, out = _path(write_suite), tmp_path / "out"
    plan = runner.invoke(app, ["plan", str(path), "--out", str(out)])
    assert plan.exit_code == 0
    assert "round 1 depends on its lr range test, not run yet" in plan.output
    first = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert first.exit_code == 0, first.output
    assert trained == ["mlp"] and "lr search: range test of mlp" in first.output
    (record_file,) = (out / "lr_find").glob("*.json")
    record = json.loads(record_file.read_text())
    runs, _ = cnnbench.load_results(out)
    assert sorted(runs[runs["round"] == 1]["lr"]) == pytest.approx(record["values"])
    assert len(record["values"]) == GRID_POINTS
    assert record["steps_run"] == len(record["curve"]["lr"])
    assert record["start"]["log"][1] == pytest.approx(record["min_loss_lr"], rel=1e-2)
    state = search_state(load_suite(path), runs, read_starts(out))
    assert state.finished and sorted(runs["run_id"]) == sorted(s.run_id for s in state.specs)
    again = runner.invoke(app, ["run", str(path), "--out", str(out)])
    assert again.exit_code == 0 and f"0 ran, {len(runs)} skipped" in again.output
    assert trained == ["mlp"]  # the record is read, the test never run again
    plan = runner.invoke(app, ["plan", str(path), "--out", str(out)])
    assert f"round 1 from its lr range test ({record_file}): log [" in " ".join(plan.output.split())
    status = runner.invoke(app, ["status", str(out), "--suite", str(path)])
    assert f"lr search: {len(state.rounds)} round(s) so far, finished" in status.output


def test_shards_read_the_record_the_first_one_wrote(write_suite, tmp_path, trained):
    path, out = _path(write_suite), tmp_path / "shards"
    for _ in range(20):  # each pass: shard 1's share, then shard 2's (it finishes the round)
        for k in (1, 2):
            result = runner.invoke(app, ["run", str(path), "--out", str(out), "--shard", f"{k}/2"])
            assert result.exit_code == 0, result.output
        if search_state(load_suite(path), cnnbench.load_results(out)[0],
                        read_starts(out)).finished:
            break
    assert trained == ["mlp"]  # shard 1 ran the test; shard 2 and every later pass read it
    local = tmp_path / "local"
    assert runner.invoke(app, ["run", str(path), "--out", str(local)]).exit_code == 0
    assert trained == ["mlp", "mlp"]  # a folder of its own: a test of its own …
    assert read_starts(local) == read_starts(out)  # … seeded: the same grid on a CPU
    assert sorted(cnnbench.load_results(local)[0]["run_id"]) == sorted(
        cnnbench.load_results(out)[0]["run_id"])


BAD_MODELS = """
import torch.nn as nn


class NanNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=3, image_size=8):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1)) * float("nan")


class Broken(NanNet):
    def forward(self, x):
        raise RuntimeError("shapes do not match")
"""


def _run_bad_model(write_suite, tmp_path, monkeypatch, name: str):
    """`cnnbench run` of a `start: auto` suite whose model is BAD_MODELS' `name`."""
    (tmp_path / "auto_bad_models.py").write_text(BAD_MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _path(write_suite, matrix={"model": [f"auto_bad_models:{name}"]})
    return runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])


def test_a_range_test_without_a_finite_loss_stops_its_group(write_suite, tmp_path,
                                                             monkeypatch):
    result = _run_bad_model(write_suite, tmp_path, monkeypatch, "NanNet")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "range test: the loss was not finite at the first step" in text
    assert "no runs; 0 ran" in text
    (start,) = read_starts(tmp_path / "out").values()
    assert start.values == () and "not finite" in start.message


def test_a_range_test_that_crashes_is_one_message_and_records_nothing(write_suite, tmp_path,
                                                                      monkeypatch):
    result = _run_bad_model(write_suite, tmp_path, monkeypatch, "Broken")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "RuntimeError: shapes do not match" in result.output
    assert read_starts(tmp_path / "out") == {}  # fixed, a re-run tests it again
