"""MLflow and TensorBoard exports, read back with the trackers' own readers: MlflowClient on a
real sqlite store, TensorBoard's EventAccumulator and its HParams plugin data."""

from __future__ import annotations

import math
import sys

import pytest
from typer.testing import CliRunner

import tests.helpers.results as rf
from cnnbench import api
from cnnbench.cli import app
from cnnbench.render.exports import records

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

ROWS = (rf.grid("sgd", {0.01: [0.5], 0.1: [0.9]}, hp_momentum=0.0, model_kwargs='{"hidden": 16}',
                git_commit="abc123", hparams='{"lr": 0.01, "momentum": 0.0}')
        + rf.grid("adam", {0.01: [None]}, git_commit="abc123"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return rf.write(tmp_path_factory.mktemp("results") / "hand", rf.runs(*ROWS))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store for the module (creating its tables takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


def _runs_of(client, suite: str):
    experiment = client.get_experiment_by_name(suite).experiment_id
    return client.search_runs([experiment], max_results=1000)


def test_records_carry_params_metrics_tags_and_the_history_points(folder):
    from cnnbench.results.loading import load_results

    runs, history = load_results(folder)
    rec = {r.run_id: r for r in records.records(runs, history)}["mlp-sgd-0.1-0"]
    assert rec.params["model"] == "mlp" and rec.params["lr"] == "0.1"
    assert rec.params["model.hidden"] == "16" and rec.params["hp.momentum"] == "0.0"
    assert rec.metrics["test_acc"] == pytest.approx(0.9)
    assert rec.tags["cnnbench.git_commit"] == "abc123"
    assert [p for p in rec.points if p[0] == "val_acc"] == [
        ("val_acc", 0.0, 0), ("val_acc", pytest.approx(0.45), 10), ("val_acc", 0.9, 20)]
    assert "val_acc" not in rec.finals_not_in_history()  # the history already ends with it
    assert records.finished_state(rec.status) == "FINISHED"


def test_mlflow_export_parent_children_history_and_nothing_new_twice(folder, store):
    from mlflow.tracking import MlflowClient

    first = api.export(folder, mlflow=store, figures=False)
    assert (first.mlflow.created, first.mlflow.unchanged) == (3, 0)
    client = MlflowClient(tracking_uri=store)
    found = _runs_of(client, "hand")
    parent = [r for r in found if r.data.tags.get("cnnbench.role") == "suite"]
    children = {r.data.tags["cnnbench.run_id"]: r for r in found if r not in parent}
    assert len(parent) == 1 and set(children) == {"mlp-sgd-0.01-0", "mlp-sgd-0.1-0",
                                                  "mlp-adam-0.01-0"}
    best = children["mlp-sgd-0.1-0"]
    assert best.data.tags["mlflow.parentRunId"] == parent[0].info.run_id
    assert best.data.tags["cnnbench.status"] == "ok" and best.info.status == "FINISHED"
    assert best.data.params["hp.momentum"] == "0.0" and best.data.params["seed"] == "0"
    assert best.data.metrics["test_acc"] == pytest.approx(0.9)
    history = client.get_metric_history(best.info.run_id, "val_acc")
    assert [(m.step, round(m.value, 3)) for m in history] == [(0, 0.0), (10, 0.45), (20, 0.9)]
    diverged = children["mlp-adam-0.01-0"]
    assert diverged.data.tags["cnnbench.status"] == "diverged"
    assert "val_acc" not in diverged.data.metrics  # NaN is not logged

    again = api.export(folder, mlflow=store, figures=False)
    assert (again.mlflow.created, again.mlflow.filled, again.mlflow.unchanged) == (0, 0, 3)
    assert len(_runs_of(client, "hand")) == len(found)
    assert len(client.get_metric_history(best.info.run_id, "val_acc")) == 3


def test_mlflow_export_fills_the_gap_of_an_incomplete_run(tmp_path, store):
    """A run live tracking started but never finished gets the rest, without duplicates."""
    from mlflow.tracking import MlflowClient

    from cnnbench.render.exports.mlflow import MlflowSink
    from cnnbench.results.loading import load_results

    folder = rf.write(tmp_path / "gap", rf.runs(*rf.grid("sgd", {0.1: [0.8]}, suite="gap")))
    runs, history = load_results(folder)
    rec = records.records(runs, history)[0]
    sink = MlflowSink(store, "gap")
    mlflow_id = sink.start(rec.run_id, rec.name, {"model": "mlp"})
    sink.log(mlflow_id, points=rec.points[:3])  # the store went away after epoch 0

    done = api.export(folder, mlflow=store, suite_file=None, figures=True)
    assert (done.mlflow.created, done.mlflow.filled) == (0, 1)
    client = MlflowClient(tracking_uri=store)
    child = [r for r in _runs_of(client, "gap") if "cnnbench.run_id" in r.data.tags]
    assert len(child) == 1 and child[0].info.run_id == mlflow_id
    steps = [m.step for m in client.get_metric_history(mlflow_id, "val_acc")]
    assert steps == [0, 10, 20]
    assert child[0].data.tags["cnnbench.complete"] == "true"
    parent = [r for r in _runs_of(client, "gap") if r.data.tags.get("cnnbench.role")][0]
    names = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert "figures/lr_sensitivity.png" in names


def test_tensorboard_scalars_and_hparams_read_back(folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    logdir = tmp_path / "tb"
    done = api.export(folder, tensorboard=logdir)
    assert sorted(p.name for p in done.tensorboard) == ["mlp-adam-0.01-0", "mlp-sgd-0.01-0",
                                                        "mlp-sgd-0.1-0"]
    events = EventAccumulator(str(logdir / "mlp-sgd-0.1-0"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"val_acc", "train_loss", "final/test_acc"} <= set(scalars)
    assert [(e.step, round(e.value, 3)) for e in events.Scalars("val_acc")] == [
        (0, 0.0), (10, 0.45), (20, 0.9)]
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["lr"].number_value == pytest.approx(0.1)
    assert start.hparams["optimizer"].string_value == "sgd"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]).experiment
    assert "final/test_acc" in {m.name.tag for m in experiment.metric_infos}
    assert {"lr", "model", "optimizer", "hp.momentum"} <= {h.name for h in
                                                           experiment.hparam_infos}
    # exporting again replaces each run's folder: still one event file per run
    api.export(folder, tensorboard=logdir)
    assert len(list((logdir / "mlp-sgd-0.1-0").iterdir())) == 1
    assert math.isclose(EventAccumulator(str(logdir / "mlp-sgd-0.1-0")).Reload()
                        .Scalars("final/test_acc")[0].value, 0.9, rel_tol=1e-6)


@pytest.mark.parametrize(("argv", "module", "extra"), [
    (["--mlflow", "sqlite:///x.db"], "mlflow", "mlflow"),
    (["--tensorboard", "tb"], "tensorboard", "tensorboard")])
def test_a_missing_extra_is_one_line_with_the_install_hint(folder, monkeypatch, argv, module,
                                                           extra):
    monkeypatch.setitem(sys.modules, module, None)  # what an absent package looks like
    result = CliRunner().invoke(app, ["export", str(folder), *argv])
    assert result.exit_code == 2
    assert f"pip install 'cnnbench[{extra}]'" in result.output
    assert "Traceback" not in result.output


def test_export_without_a_target_is_a_user_error(folder):
    result = CliRunner().invoke(app, ["export", str(folder)])
    assert result.exit_code == 2 and "--mlflow URI and/or --tensorboard LOGDIR" in result.output
