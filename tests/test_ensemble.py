"""Vectorized ensembles: the same numbers as sequential runs (fp64), divergence masking, resume
from per-member checkpoints, grouping, OOM halving and the `execution` key end to end."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from cnnbench import load_results, run_suite
from cnnbench.errors import SuiteError
from cnnbench.execute import grouping
from cnnbench.execute.grouping import plan_groups, resolve_execution
from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train import signals
from cnnbench.train import trainer as trainer_module
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.engine import train
from cnnbench.train.ensemble import Ensemble
from tests.helpers.ensembles import SUITE, assert_same_history

# one member per optimizer, each at its own lr and seed
MEMBERS = [("sgd", {}, 0.05, 0), ("sgd", {"label": "momentum", "momentum": 0.9}, 0.02, 1),
           ("adam", {}, 0.003, 0), ("qhadam", {}, 0.002, 1)]


def _suite(**sections):
    return validate_suite({**SUITE, **sections})


def _specs(model="mlp", members=MEMBERS, dataset=SUITE["dataset"], **train):
    specs = []
    for name, options, lr, seed in members:
        suite = _suite(dataset=dataset, train={**SUITE["train"], **train}, seeds=[seed],
                       matrix={"model": [model], "optimizer": [{"name": name, **options}],
                               "lr": [lr]})
        specs += expand(suite)
    return specs


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small train fastest on one thread; two spin-wait on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return prepare_data(_suite().dataset_config, torch.device("cpu"))


def _ensemble(specs, data, **kwargs):
    results = {}
    Ensemble(specs, data, **kwargs).run(lambda spec, result: results.__setitem__(spec.run_id,
                                                                                 result))
    return results


@pytest.mark.parametrize("model", ["mlp", "lenet5", "resnet20"])
def test_fp64_ensemble_equals_sequential_runs(model, data):
    specs = _specs(model)
    ens = _ensemble(specs, data)
    for spec in specs:
        seq = train(spec, data)
        result = ens[spec.run_id]
        assert result.outcome.status == seq.outcome.status == "ok"
        assert (result.outcome.steps, result.outcome.samples) == (4, 64)
        assert_same_history(seq.history, result.history, 1e-9)
        assert result.outcome.optimizer_hparams == seq.outcome.optimizer_hparams


def test_fp32_first_steps_agree(data):
    specs = _specs("resnet20", MEMBERS[:2], precision=None, epochs=1)
    ens = _ensemble(specs, data)
    for spec in specs:
        assert_same_history(train(spec, data).history, ens[spec.run_id].history, 1e-5)


def test_dropout_members_train_and_start_where_their_sequential_runs_start():
    """keras_cnn has dropout: members draw their own masks (equal in distribution only), but
    the evaluation at initialisation is the sequential run's."""
    dataset = {**SUITE["dataset"], "image_size": 16}
    data16 = prepare_data(_suite(dataset=dataset).dataset_config, torch.device("cpu"))
    specs = _specs("keras_cnn", MEMBERS[2:], dataset)
    ens = _ensemble(specs, data16)
    for spec in specs:
        result = ens[spec.run_id]
        assert result.outcome.status == "ok" and math.isfinite(result.outcome.train_loss)
        assert_same_history(train(spec, data16).history[:1], result.history[:1], 1e-9)


@pytest.mark.parametrize("interval", [1, 1000])
def test_a_diverging_member_is_frozen_and_the_others_go_on(data, monkeypatch, interval):
    """Interval 1: the guard reads every step (CPU); 1000: only the first step and each epoch's
    mean (as on CUDA, every 25 steps), the way a divergence between two reads is caught."""
    monkeypatch.setattr(trainer_module, "check_interval", lambda device: interval)
    specs = _specs(members=[("sgd", {}, 0.05, 0), ("sgd", {}, 1e4, 0), ("adam", {}, 0.003, 1)],
                   epochs=3)
    ens = _ensemble(specs, data)
    order = []
    for spec in specs:
        seq = train(spec, data)
        result = ens[spec.run_id]
        order.append(result.outcome.status)
        assert result.outcome.status == seq.outcome.status
        assert result.outcome.message == seq.outcome.message
        assert result.outcome.steps == seq.outcome.steps
        assert_same_history(seq.history, result.history, 1e-9)
    assert order == ["ok", "diverged", "ok"]
    message = ens[specs[1].run_id].outcome.message
    assert ("epoch's mean" in message) == (interval == 1000), message


def test_members_resume_from_their_own_checkpoints(data, tmp_path):
    specs = _specs(epochs=3)
    checkpoints = [Checkpoint(tmp_path / f"{s.run_id}.pt", s.run_id) for s in specs]

    def stop_after_epoch_1(spec, epoch, row):
        if epoch == 1:
            signals.request_stop("SIGTERM")

    first = {}
    with signals.graceful_stop(lambda text: None):  # clears the stop request on the way out
        Ensemble(specs, data, checkpoints=checkpoints).run(
            lambda spec, result: first.__setitem__(spec.run_id, result), stop_after_epoch_1)
    assert {r.outcome.status for r in first.values()} == {"interrupted"}
    # one member loses its checkpoint: it trains its first epoch alone-in-ensemble, then joins
    checkpoints[0].remove()
    ens = _ensemble(specs, data, checkpoints=checkpoints)
    for spec in specs:
        result = ens[spec.run_id]
        assert result.outcome.status == "ok"
        assert result.outcome.resumed_from_epoch == (None if spec is specs[0] else 1)
        assert_same_history(train(spec, data).history, result.history, 1e-9)


def test_grouping_keeps_runs_that_differ_only_in_lr_seed_or_hyperparameters():
    suite = _suite(seeds=2, matrix={"model": ["mlp", "lenet5"],
                                    "optimizer": ["sgd", {"name": "sgd", "label": "momentum",
                                                          "momentum": 0.9}, "adam"],
                                    "lr": [0.01, 0.1]})
    specs = expand(suite)
    groups = plan_groups(specs, max_size=16)
    # per model: sgd and momentum (one optimizer class) × 2 lrs × 2 seeds, and adam's 4 runs
    assert sorted(len(g) for g in groups) == [4, 4, 8, 8]
    for group in groups:
        assert len({(s.model, s.optimizer_name) for s in group}) == 1
    # 8 runs → 3 + 3 + 2, 4 runs → 3 + 1
    assert sorted(len(g) for g in plan_groups(specs, max_size=3)) == [1, 1, 2, 2] + [3] * 6
    alone = expand(_suite(train={**SUITE["train"], "batch_size": "full"},
                          matrix={"model": ["mlp"], "optimizer": ["sgd"], "lr": [0.1, 0.2]}))
    assert [len(g) for g in plan_groups(alone, max_size=16)] == [1, 1]


def test_auto_takes_the_ensemble_on_cuda_only():
    assert resolve_execution("auto", torch.device("cpu")) == "sequential"
    assert resolve_execution("auto", torch.device("cuda")) == "ensemble"
    assert resolve_execution("ensemble", torch.device("cpu")) == "ensemble"
    with pytest.raises(SuiteError, match="execution"):
        _suite(execution="vectorized")


def _suite_results(out, **options):
    suite = _suite(seeds=2, matrix={"model": ["mlp"], "optimizer": ["sgd"],
                                    "lr": [0.01, 0.05, 0.2]})
    outcome = run_suite(suite, out, **options)
    assert outcome.succeeded and outcome.ran == 6
    return load_results(out)


def test_run_suite_as_ensembles_writes_the_rows_a_sequential_run_writes(tmp_path):
    runs_seq, hist_seq = _suite_results(tmp_path / "seq")
    runs_ens, hist_ens = _suite_results(tmp_path / "ens", execution="ensemble", ensemble_max=4)
    assert sorted(runs_seq["run_id"]) == sorted(runs_ens["run_id"])
    assert set(runs_seq["execution"]) == {"sequential"}
    assert set(runs_ens["execution"]) == {"ensemble"}
    assert sorted(runs_ens["ensemble_size"]) == [2, 2, 4, 4, 4, 4]
    for _, members in runs_ens.groupby("ensemble_size"):  # times are the ensemble's, shared
        assert members["wall_s"].nunique() == members["train_s"].nunique() == 1
    columns = ["run_id", "epoch", "step", "samples", "lr", "train_loss", "val_loss", "test_acc"]
    a = hist_seq[columns].sort_values(["run_id", "epoch"]).reset_index(drop=True)
    b = hist_ens[columns].sort_values(["run_id", "epoch"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, rtol=1e-9, atol=1e-12)
    assert not (tmp_path / "ens" / "checkpoints").exists() or not any(
        (tmp_path / "ens" / "checkpoints").iterdir())


def test_workers_group_their_shares_up_to_ensemble_max(tmp_path):
    # 6 runs over 2 workers, 3 each: groups of at most 2 (the default size would take all 3)
    runs, _ = _suite_results(tmp_path, execution="ensemble", ensemble_max=2, workers=2)
    assert sorted(runs["ensemble_size"]) == [1, 1, 2, 2, 2, 2]


class _OomAbove3(Ensemble):
    """An ensemble that runs out of memory with more than three members."""

    def step(self, group, xs, ys):
        if len(group) > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super().step(group, xs, ys)


class _Unbatchable(Ensemble):
    def step(self, group, xs, ys):
        raise RuntimeError("vmap: this model reads .item()")


@pytest.mark.parametrize("ensemble, sizes", [(_OomAbove3, [3, 3, 3, 3, 3, 3]),
                                             (_Unbatchable, [1, 1, 1, 1, 1, 1])])
def test_oom_halves_the_ensemble_and_other_failures_train_alone(tmp_path, monkeypatch,
                                                                ensemble, sizes):
    monkeypatch.setattr(grouping, "Ensemble", ensemble)
    runs, history = _suite_results(tmp_path, execution="ensemble", ensemble_max=8)
    assert set(runs["status"]) == {"ok"}
    assert sorted(runs["ensemble_size"]) == sizes
    assert len(history) == 6 * 3


def test_run_cli_takes_execution(write_suite, tmp_path):
    from typer.testing import CliRunner

    from cnnbench.cli.app import app

    path = write_suite({**SUITE, "matrix": {"model": ["mlp"], "optimizer": ["sgd"],
                                            "lr": [0.01, 0.1]}})
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out),
                                      "--execution", "ensemble", "--ensemble-max", "2"])
    assert result.exit_code == 0, result.output
    runs, _ = load_results(out)
    assert list(runs["execution"]) == ["ensemble", "ensemble"]
    bad = CliRunner().invoke(app, ["run", str(path), "--execution", "fast"])
    assert bad.exit_code == 2


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.cuda
@needs_cuda
def test_cuda_fp64_ensemble_equals_sequential_runs():
    data = prepare_data(_suite().dataset_config, torch.device("cuda"))
    specs = _specs("resnet20", MEMBERS[:2])
    ens = _ensemble(specs, data)
    for spec in specs:
        assert_same_history(train(spec, data).history, ens[spec.run_id].history, 1e-9)
    assert grouping.members_that_fit(specs * 4, data, 8) >= 1
