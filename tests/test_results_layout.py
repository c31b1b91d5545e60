"""Results as an open parquet dataset (issue 14): typed tables, version 1 folders, upgrade,
newer versions refused, damaged files named, compaction under writers and crashes."""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import warnings
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import cnnbench
from cnnbench import run_suite
from cnnbench.cli.app import app
from cnnbench.errors import CnnbenchError
from cnnbench.results.compaction import compact
from cnnbench.results.files import LOOSE
from cnnbench.results.loading import DamagedResultsWarning
from cnnbench.results.schema import RUN_COLUMNS
from cnnbench.results.store import ResultStore
from cnnbench.suite.loading import validate_suite
from tests.helpers import results as rf
from tests.helpers.suites import TINY_SUITE

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "results_v1"  # written at 60cd2f9, with a hand-made run of ±inf losses
# every version-1 folder kept: the first one and the last release's (b4a3f2e)
V1_FOLDERS = [FIXTURE, FIXTURES / "results_v1_b4a3f2e"]
runner = CliRunner()


def _v1_copy(tmp_path, fixture: Path = FIXTURE) -> Path:
    folder = tmp_path / "v1"
    shutil.copytree(fixture / "runs", folder / "runs")
    return folder


def _expected(name: str, fixture: Path = FIXTURE) -> pd.DataFrame:
    frame = pd.DataFrame(json.loads((fixture / f"expected_{name}.json").read_text()))
    # version 1 returned ±inf as the strings "inf"/"-inf": they now come back as floats
    return frame.replace({"inf": math.inf, "-inf": -math.inf})


def _same_values(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.reset_index(drop=True)
    for column in want.columns:
        a, b = got[column].tolist(), want[column].tolist()
        for x, y in zip(a, b, strict=True):
            if pd.isna(y):
                assert x is None or pd.isna(x), (column, x, y)
            elif isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-9), (column, x, y)
            else:
                assert x == y, (column, x, y)


@pytest.mark.parametrize("fixture", V1_FOLDERS, ids=lambda p: p.name)
def test_version_1_folder_loads_as_the_old_release_did(fixture):
    runs, history = cnnbench.load_results(fixture)
    _same_values(runs.sort_values("run_id"), _expected("runs", fixture))
    old_history = pd.concat([pq.read_table(p).to_pandas() for p in  # what version 1 did
                             sorted((fixture / "runs").glob("*.parquet"))], ignore_index=True)
    pd.testing.assert_frame_equal(history, old_history)
    _same_values(cnnbench.load_grad_norms(fixture), _expected("grad_norms", fixture))


def test_version_1_inf_losses_come_back_as_floats():
    runs, _ = cnnbench.load_results(FIXTURE)
    assert runs.loc[runs["run_id"] == "handinf00001", "train_loss"].item() == math.inf


@pytest.mark.parametrize("fixture", V1_FOLDERS, ids=lambda p: p.name)
def test_upgrade_rewrites_version_1_and_loads_the_same(tmp_path, fixture):
    folder = _v1_copy(tmp_path, fixture)
    before = cnnbench.load_results(folder)
    norms_before = cnnbench.load_grad_norms(folder)
    result = runner.invoke(app, ["upgrade", str(folder)])
    files = len(list((fixture / "runs").glob("*.parquet")))
    assert result.exit_code == 0 and f"{files} run file(s) rewritten" in result.output
    for path in (folder / "runs").glob("*.parquet"):
        assert b"cnnbench.summary" not in (pq.read_schema(path).metadata or {})
    after = cnnbench.load_results(folder)
    ignore = ["schema_version", "written_at"]
    pd.testing.assert_frame_equal(before[0].drop(columns=ignore), after[0].drop(columns=ignore))
    pd.testing.assert_frame_equal(before[1], after[1])
    pd.testing.assert_frame_equal(norms_before, cnnbench.load_grad_norms(folder))
    assert set(after[0]["schema_version"]) == {2}
    assert runner.invoke(app, ["upgrade", str(folder)]).output.count("0 run file(s)") == 1


def test_a_version_1_folder_resumed_and_compacted_loads_every_run_once(tmp_path):
    folder = _v1_copy(tmp_path)
    before = cnnbench.load_results(folder)
    rf.write(folder, rf.runs(rf.run(model="new")))  # a newer cnnbench resumes the suite
    compact(folder)
    runs, history = cnnbench.load_results(folder)
    assert sorted(runs["run_id"]) == sorted([*before[0]["run_id"], "new-sgd-0.1-0"])
    old = runs[runs["run_id"].isin(before[0]["run_id"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(before[0].drop(columns="written_at"),
                                  old[before[0].columns].drop(columns="written_at"))
    pd.testing.assert_frame_equal(before[1], history[history["run_id"].isin(
        before[0]["run_id"])].reset_index(drop=True))
    pd.testing.assert_frame_equal(cnnbench.load_grad_norms(FIXTURE), cnnbench.load_grad_norms(
        folder))


def test_runs_files_have_every_documented_column_typed(tmp_path):
    folder = rf.write(tmp_path / "r", rf.runs(rf.run(lr=0.1), rf.run(lr=1.0, status="diverged",
                                                                      train_loss=math.inf)))
    schema = pq.read_schema(next((folder / "runs").glob("*.parquet")))
    for name, (value_type, _) in RUN_COLUMNS.items():
        assert schema.field(name).type == value_type, name
    runs, _ = cnnbench.load_results(folder)
    assert runs.loc[runs["lr"] == 1.0, "train_loss"].item() == math.inf
    assert runs["val_acc"].dtype == "float64" and runs["seed"].dtype == "int64"


def test_a_real_run_writes_only_documented_columns(tmp_path):
    suite = validate_suite({**TINY_SUITE, "probes": ["time", "memory", "flops", "grad_norms"],
                            "train": {"epochs": 1, "batch_size": 16, "precision": "bf16"},
                            "matrix": {**TINY_SUITE["matrix"], "optimizer": ["adam"],
                                       "lr": [0.01]}})
    run_suite(suite, tmp_path / "r")
    schema = pq.read_schema(next((tmp_path / "r" / "runs").glob("*.parquet")))
    undocumented = [n for n in schema.names if n not in RUN_COLUMNS and not n.startswith("hp_")]
    assert undocumented == []
    for name, (value_type, _) in RUN_COLUMNS.items():
        assert schema.field(name).type == value_type, name


def test_the_docs_document_every_runs_column_with_its_type():
    page = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
    table = page[page.index("**`runs`**, one row per run"):page.index("**`history`**")]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    for name, (value_type, _) in RUN_COLUMNS.items():
        row = next((r for r in rows if name in [c.strip() for c in r.split("|")[1].split(",")]),
                   None)
        assert row is not None, f"docs/results.md lacks runs column {name}"
        assert str(value_type) in row.split("|")[2], f"docs/results.md gives {name} another type"


def test_a_newer_schema_version_is_refused_with_both_versions(tmp_path):
    folder = rf.write(tmp_path / "r", rf.runs(rf.run()))
    (folder / "cnnbench-results.json").write_text(json.dumps({"schema_version": 7}))
    with pytest.raises(CnnbenchError, match="schema version 7; this cnnbench reads versions 1 "
                                            "to 2"):
        cnnbench.load_results(folder)
    result = runner.invoke(app, ["report", str(folder)])
    assert result.exit_code == 2 and "schema version 7" in result.output
    assert "Traceback" not in result.output


def test_damaged_and_foreign_files_are_named_and_run_again(write_suite, tmp_path):
    out = tmp_path / "out"
    first = ["run", str(write_suite()), "--out", str(out), "--set", "matrix.optimizer=[sgd]"]
    assert runner.invoke(app, first).exit_code == 0  # two runs, in the first writer's part
    [victim] = (out / "runs").glob("*.parquet")
    assert runner.invoke(app, first[:4]).exit_code == 0  # the other two, in a second part
    victim.write_bytes(b"PAR1 this is not a parquet file")
    pq.write_table(pd.DataFrame({"x": [1]}).pipe(__import__("pyarrow").Table.from_pandas),
                   out / "runs" / "notes.parquet")
    with pytest.warns(DamagedResultsWarning, match=f"notes.parquet.*{victim.name}"):
        runs, _ = cnnbench.load_results(out)
    assert len(runs) == 2
    for command in (["report", str(out)], ["status", str(out)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert victim.name in result.output and "count as not done" in result.output
    again = runner.invoke(app, ["run", str(write_suite()), "--out", str(out)])
    assert again.exit_code == 0
    assert "the runs in 2 result file(s) that could not be read count as not done and run " \
        "again" in again.output and victim.name in again.output
    assert "2 ran, 2 skipped" in again.output
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs, _ = cnnbench.load_results(out)
    assert len(runs) == 4 and [str(w.message) for w in caught if "notes" in str(w.message)]


def test_compaction_folds_files_and_loads_the_same(write_suite, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(write_suite()), "--out", str(out)]).exit_code == 0
    before = cnnbench.load_results(out)
    result = runner.invoke(app, ["compact", str(out)])
    assert result.exit_code == 0 and "4 run(s) in one file" in result.output
    assert [p.name.startswith("compacted-") for p in (out / "runs").iterdir()] == [True]
    after = cnnbench.load_results(out)
    pd.testing.assert_frame_equal(before[0], after[0])
    pd.testing.assert_frame_equal(before[1], after[1])
    assert ResultStore(out).finished_ids() == dict(zip(before[0]["run_id"],
                                                       before[0]["status"], strict=True))
    again = runner.invoke(app, ["run", str(write_suite()), "--out", str(out)])
    assert "0 ran, 4 skipped" in again.output


def test_run_compacts_a_whole_suite_that_left_many_parts_but_a_shard_does_not(
        write_suite, tmp_path, monkeypatch):
    import cnnbench.results.compaction as compaction
    import cnnbench.results.store as store_module

    monkeypatch.setattr(compaction, "AUTO_COMPACT_FILES", 2)
    monkeypatch.setattr(store_module, "PART_RUNS", 1)  # a part per run: four of them
    shard = tmp_path / "shard"
    result = runner.invoke(app, ["run", str(write_suite()), "--out", str(shard), "--shard", "1/2"])
    assert result.exit_code == 0 and "compacted" not in result.output
    assert len(list((shard / "runs").iterdir())) == 2
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(write_suite()), "--out", str(out)])
    assert result.exit_code == 0 and "compacted 8 result files" in result.output  # runs, history
    assert [p.name.startswith("compacted-") for p in (out / "runs").iterdir()] == [True]
    assert len(cnnbench.load_results(out)[0]) == 4


def test_history_without_its_row_is_a_run_not_done(tmp_path):
    """A writer killed between its history file and its row: nothing to load, no error."""
    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "a", "status": "ok"}, [{"run_id": "a", "epoch": 0}])
    for part in (tmp_path / "runs").iterdir():  # as if the row had never been renamed in
        part.unlink()
    runs, history = cnnbench.load_results(tmp_path)
    assert runs.empty and history.empty and store.finished_ids() == {}


def test_a_rerun_after_compaction_wins_once(tmp_path):
    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "a", "status": "error", "val_acc": math.nan},
                [{"run_id": "a", "epoch": 0, "val_acc": 0.1}])
    store.write({"run_id": "b", "status": "ok", "val_acc": 0.5}, [{"run_id": "b", "epoch": 0}])
    compact(tmp_path)
    store.write({"run_id": "a", "status": "ok", "val_acc": 0.9},
                [{"run_id": "a", "epoch": 0, "val_acc": 0.2}, {"run_id": "a", "epoch": 1,
                                                               "val_acc": 0.9}])
    runs, history = cnnbench.load_results(tmp_path)
    assert dict(zip(runs["run_id"], runs["status"], strict=True)) == {"a": "ok", "b": "ok"}
    assert history.loc[history["run_id"] == "a", "val_acc"].tolist() == [0.2, 0.9]
    assert store.finished_ids() == {"a": "ok", "b": "ok"}
    compact(tmp_path)
    assert cnnbench.load_results(tmp_path)[1].equals(history)
    assert len(list((tmp_path / "history").iterdir())) == 1


def _crash(folder: Path, step: str) -> None:
    compact(folder, crash_after=step)


@pytest.mark.parametrize("step", ["history", "runs", "remove-one"])
def test_compaction_killed_at_each_step_loses_and_doubles_nothing(tmp_path, step):
    frame = rf.runs(*rf.grid("sgd", {0.01: [0.5, 0.6], 0.1: [0.8, None]}))
    folder = rf.write(tmp_path / "r", frame)
    compact(folder)  # one compacted generation, so the crash also meets an older one
    rf.write(folder, rf.runs(*rf.grid("adam", {0.001: [0.7, 0.75]})))
    before = cnnbench.load_results(folder)
    proc = multiprocessing.get_context("fork").Process(target=_crash, args=(folder, step))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 137
    runs, history = cnnbench.load_results(folder)
    pd.testing.assert_frame_equal(before[0].drop(columns="written_at"),
                                  runs.drop(columns="written_at"))
    pd.testing.assert_frame_equal(before[1], history)
    compact(folder)  # the next compaction tidies up
    assert len(list((folder / "runs").iterdir())) == 1
    pd.testing.assert_frame_equal(before[1], cnnbench.load_results(folder)[1])


def test_a_row_written_during_compaction_is_kept(tmp_path, monkeypatch):
    """A shard replaces a run's row after compaction read it: the newer row survives."""
    import cnnbench.results.compaction as compaction

    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "a", "status": "interrupted"}, [])
    store.write({"run_id": "b", "status": "ok"}, [])
    real = compaction.write_parquet

    def write_then_race(table, target, what, options):
        real(table, target, what, options)
        if target.parent.name == "runs":  # compaction committed; a shard finishes run a now
            store.write({"run_id": "a", "status": "ok", "val_acc": 0.7},
                        [{"run_id": "a", "epoch": 1, "val_acc": 0.7}])

    monkeypatch.setattr(compaction, "write_parquet", write_then_race)
    compact(tmp_path)
    runs, history = cnnbench.load_results(tmp_path)
    assert dict(zip(runs["run_id"], runs["status"], strict=True)) == {"a": "ok", "b": "ok"}
    assert history["val_acc"].tolist() == [0.7]
    assert [p.name.startswith("part-") for p in (tmp_path / "runs").iterdir()].count(True) == 1


def test_a_compaction_between_a_writers_history_and_its_row_keeps_that_history(
        tmp_path, monkeypatch):
    """The writer's part holds run c's history but not yet its row when compaction runs: the
    history part is not folded away, and c arrives whole."""
    import cnnbench.results.store as store_module

    store = ResultStore(tmp_path)
    store.prepare()
    store.write({"run_id": "a", "status": "ok"}, [{"run_id": "a", "epoch": 0, "val_acc": 0.1}])
    real = store_module.write_parquet

    def compact_between(table, target, what, options=LOOSE):
        real(table, target, what, options)
        if target.parent.name == "history" and "c" in table["run_id"].to_pylist():
            compact(tmp_path)

    monkeypatch.setattr(store_module, "write_parquet", compact_between)
    store.write({"run_id": "c", "status": "ok"}, [{"run_id": "c", "epoch": 0, "val_acc": 0.3}])
    runs, history = cnnbench.load_results(tmp_path)
    assert sorted(runs["run_id"]) == ["a", "c"]
    assert dict(zip(history["run_id"], history["val_acc"], strict=True)) == {"a": 0.1, "c": 0.3}
    monkeypatch.undo()
    compact(tmp_path)
    assert cnnbench.load_results(tmp_path)[1].equals(history)
    assert [len(list((tmp_path / t).iterdir())) for t in ("runs", "history")] == [1, 1]


def test_a_second_compaction_at_once_is_refused(tmp_path):
    import fcntl
    import os

    folder = rf.write(tmp_path / "r", rf.runs(rf.run()))
    fd = os.open(folder / ".compact.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        result = runner.invoke(app, ["compact", str(folder)])
        assert result.exit_code == 2 and "another compaction" in result.output
    finally:
        os.close(fd)
