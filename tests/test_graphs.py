"""`train: {graphs: true}`: what cannot be captured is refused at validation; a graph run drops
the last, smaller batch (everywhere, so its numbers do not depend on the device) and says so in
its row; and, through `EagerGraphStep` (the capture protocol without a GPU), a captured step
replays the numbers of the eager one — lr schedules, several optimizers, a member that freezes."""

from __future__ import annotations

import pytest
import torch
import yaml
from typer.testing import CliRunner

from cnnbench import load_results, run_suite
from cnnbench.cli import app
from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train.engine import train
from cnnbench.train.ensemble import Ensemble
from tests.helpers import graphs
from tests.helpers.ensembles import SUITE, assert_same_history

# 36 training images in batches of 16: two whole batches, and 4 images a graph run drops
DATA = {**SUITE["dataset"], "train_size": 44}
GRAPHS = {**SUITE["train"], "graphs": True, "epochs": 3}


def _specs(members, **train):
    specs = []
    for name, options, lr, seed in members:
        specs += expand(validate_suite({**SUITE, "dataset": DATA, "seeds": [seed],
                                        "train": {**GRAPHS, **train},
                                        "matrix": {"model": ["lenet5"], "optimizer": [
                                            {"name": name, **options}], "lr": [lr]}}))
    return specs


MEMBERS = [("sgd", {"label": "momentum", "momentum": 0.9}, 0.05, 0),
           ("sgd", {"label": "momentum", "momentum": 0.9}, 0.01, 1),
           ("adam", {}, 0.003, 0)]


@pytest.fixture(scope="module")
def data():
    return prepare_data(validate_suite({**SUITE, "dataset": DATA}).dataset_config,
                        torch.device("cpu"))


def _ensemble(specs, data):
    results = {}
    ensemble = Ensemble(specs, data)
    ensemble.run(lambda spec, result: results.__setitem__(spec.run_id, result))
    return results, ensemble


@pytest.mark.parametrize(("train", "key", "says"), [
    ({"batch_size": "full"}, "train.batch_size", "full-batch steps"),
    ({"precision": "fp16"}, "train.precision", "GradScaler"),
    ({"compile": True}, "train.compile", "compile: true"),
    ({"channels_last": True}, "train.channels_last", "default layout"),
])
def test_what_cannot_be_captured_is_one_message_at_validation(write_suite, tmp_path, train,
                                                              key, says):
    path = write_suite(train={"graphs": True, **train})
    out = tmp_path / "out"
    for command in (["validate", str(path)], ["run", str(path), "--out", str(out)]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, result.output
        assert f"{key}: graphs: true" in result.output and says in result.output
        assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(("optimizer", "says"), [
    ("lbfgs", "closure"), ("tests.helpers.optimizers:PlainSGD", "no capturable update"),
    ({"name": "adam", "maximize": True}, "maximize")])
def test_an_optimizer_without_a_capturable_update_is_refused(write_suite, optimizer, says):
    path = write_suite(train={"graphs": True},
                       matrix={"model": ["mlp"], "optimizer": ["sgd", optimizer], "lr": [0.1]})
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2 and "matrix.optimizer[1]: graphs: true" in result.output
    assert says in result.output and "Traceback" not in result.output


def test_a_graph_run_trains_whole_batches_and_says_what_it_dropped(data):
    spec = _specs(MEMBERS[:1])[0]
    result = train(spec, data)  # eager: the same steps as a captured run
    assert result.outcome.steps == 3 * 2 and result.outcome.samples == 3 * 32
    assert result.summary["dropped_per_epoch"] == 4 and result.summary["graphs"] is False


def test_without_cuda_a_graph_suite_trains_eagerly(tmp_path):
    suite = validate_suite({**SUITE, "dataset": DATA, "train": GRAPHS,
                            "matrix": {"model": ["mlp"], "optimizer": ["sgd"], "lr": [0.1]}})
    assert run_suite(suite, tmp_path / "out").succeeded
    runs, _ = load_results(tmp_path / "out")
    assert runs["graphs"].tolist() == [False] and runs["dropped_per_epoch"].tolist() == [4]
    assert runs["steps"].tolist() == [6]


def test_captured_members_replay_the_eager_numbers(data, monkeypatch):
    """Cosine lrs change every step: a replay that read a stale lr would drift from the eager
    runs. Two fused updates (momentum, Adam) and BatchNorm-free LeNet-5, fp64."""
    eager = {spec.run_id: train(spec, data) for spec in _specs(MEMBERS)}
    step = graphs.install(monkeypatch)
    results, ensemble = _ensemble(_specs(MEMBERS), data)
    assert step.captures == 1 and ensemble.graphs
    for run_id, alone in eager.items():
        member = results[run_id]
        assert member.outcome.status == "ok" and member.summary["graphs"] is True
        assert member.outcome.steps == alone.outcome.steps == 6
        assert_same_history(alone.history, member.history, 1e-9)


def test_a_member_that_freezes_sends_the_rest_through_the_eager_step(data, monkeypatch):
    members = [*MEMBERS[:2], ("sgd", {}, 1e4, 0)]  # lr 1e4 diverges
    eager = {spec.run_id: train(spec, data) for spec in _specs(members)}
    graphs.install(monkeypatch)
    results, _ = _ensemble(_specs(members), data)
    statuses = sorted(r.outcome.status for r in results.values())
    assert statuses == ["diverged", "ok", "ok"]
    for run_id, alone in eager.items():
        assert results[run_id].outcome.status == alone.outcome.status
        assert_same_history(alone.history, results[run_id].history, 1e-9)


def test_a_graph_run_alone_goes_through_the_captured_step(monkeypatch, tmp_path):
    step = graphs.install(monkeypatch)
    suite = validate_suite({**SUITE, "dataset": DATA, "train": GRAPHS,
                            "matrix": {"model": ["mlp"], "optimizer": ["adam"], "lr": [0.01]}})
    assert run_suite(suite, tmp_path / "out").succeeded
    runs, history = load_results(tmp_path / "out")
    assert step.captures == 1
    row = runs.iloc[0]
    assert (row["execution"], row["ensemble_size"], row["graphs"]) == ("sequential", 1, True)
    spec = expand(suite)[0]
    alone = train(spec, prepare_data(suite.dataset_config, torch.device("cpu")))
    assert row["val_loss"] == pytest.approx(alone.outcome.val_loss, rel=1e-9)


def test_the_cuda_keys_are_in_the_suite_schema(write_suite):
    path = write_suite(train={"tf32": False, "graphs": False, "channels_last": False})
    suite = yaml.safe_load(path.read_text())
    assert validate_suite(suite).train.tf32 is False


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_captured_members_replay_the_eager_numbers():
    """The real capture (torch.cuda.graph) on a GPU: fp64, cosine lrs, two fused updates."""
    cuda = torch.device("cuda")
    data = prepare_data(validate_suite({**SUITE, "dataset": DATA}).dataset_config, cuda)
    specs = _specs(MEMBERS)
    eager = {spec.run_id: train(spec, data) for spec in specs}
    results, ensemble = _ensemble(specs, data)
    assert ensemble.graphs and ensemble._captured.graph is not None
    for run_id, alone in eager.items():
        assert results[run_id].summary["graphs"] is True
        assert_same_history(alone.history, results[run_id].history, 1e-9)
