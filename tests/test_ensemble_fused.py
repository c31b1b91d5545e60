"""The fused optimizer update (optim/fused.py, train/stacking.py): every rule equals its own
optimizer run alone (fp64), several members per rule with their own hyper-parameters, resumed
and frozen members, a user's optimizer beside fused ones, and the operations a step dispatches
do not grow with the members."""

from __future__ import annotations

import pytest
import torch

from benchmarks.launches import count_ops
from cnnbench.execute.local import prepare_data
from cnnbench.optim import OPTIMIZERS
from cnnbench.optim.fused import FUSED_RULES, rule_for
from cnnbench.optim.registry import optimizer_def
from cnnbench.suite import expand, validate_suite
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.engine import train
from cnnbench.train.ensemble import Ensemble
from tests.helpers.ensembles import SUITE, assert_same_history

# each fused rule twice, with other hyper-parameters: both rows of one update differ
CASES = {
    "sgd": [{}, {"weight_decay": 1e-3}],
    "momentum": [{}, {"momentum": 0.5, "dampening": 0.1, "weight_decay": 1e-3}],
    "nesterov": [{}, {"momentum": 0.7}],
    "adam": [{}, {"betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 1e-2}],
    "adam-amsgrad": [{"amsgrad": True}, {"amsgrad": True, "betas": [0.5, 0.9]}],
    "adamw": [{}, {"weight_decay": 0.1, "betas": [0.85, 0.95]}],
    "rmsprop": [{}, {"alpha": 0.9, "weight_decay": 1e-3}],
    "rmsprop-centered": [{"centered": True, "momentum": 0.9}, {"centered": True,
                                                               "momentum": 0.5}],
    "adagrad": [{}, {"lr_decay": 0.1, "initial_accumulator_value": 0.1}],
    "adadelta": [{}, {"rho": 0.5, "weight_decay": 1e-3}],
    "adamax": [{}, {"betas": [0.8, 0.99]}],
    "nadam": [{}, {"momentum_decay": 0.01, "weight_decay": 1e-3}],
    "radam": [{}, {"betas": [0.9, 0.99], "weight_decay": 1e-3}],
    "qhm": [{}, {"nu": 0.3, "momentum": 0.9}],
    "qhadam": [{}, {"nus": [0.5, 0.9], "betas": [0.9, 0.99]}],
    "aggmo": [{}, {"betas": [0.0, 0.5, 0.9], "weight_decay": 1e-3}],
}
LRS = {"adadelta": (1.0, 0.5), "adagrad": (0.05, 0.02), "qhm": (0.1, 0.05)}


def _specs(case: str, options: list[dict], epochs: int = 4, lrs=(0.01, 0.003)) -> list:
    name = case.split("-")[0]
    specs = []
    for seed, (extra, lr) in enumerate(zip(options, LRS.get(name, lrs))):
        matrix = {"model": ["mlp"], "optimizer": [{"name": name, **extra}], "lr": [lr]}
        specs += expand(validate_suite({**SUITE, "seeds": [seed], "matrix": matrix,
                                        "train": {**SUITE["train"], "epochs": epochs}}))
    return specs


@pytest.fixture(scope="module")
def data():
    return prepare_data(validate_suite(SUITE).dataset_config, torch.device("cpu"))


def _ensemble(specs, data, **kwargs):
    results = {}
    ensemble = Ensemble(specs, data, **kwargs)
    ensemble.run(lambda spec, result: results.__setitem__(spec.run_id, result))
    return results, ensemble


def test_every_registered_optimizer_but_closures_has_a_fused_rule():
    fused = {name for name in OPTIMIZERS.names() if optimizer_def(name).cls in FUSED_RULES}
    assert fused == set(OPTIMIZERS.names()) - {"lbfgs"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_members_equal_their_runs_alone_fp64(case, data):
    specs = _specs(case, CASES[case])  # 8 steps: RAdam crosses into its rectified steps
    results, ensemble = _ensemble(specs, data)
    assert not ensemble.optimizers.alone and len(ensemble.optimizers.fused) == 1
    for spec in specs:
        alone, member = train(spec, data), results[spec.run_id]
        assert member.outcome.status == alone.outcome.status == "ok"
        assert_same_history(alone.history, member.history, 1e-9)


def test_a_member_exports_the_state_its_optimizer_holds_alone(data, tmp_path):
    specs = _specs("adam", CASES["adam"], epochs=2)
    checkpoints = [Checkpoint(tmp_path / f"{s.run_id}.pt", s.run_id) for s in specs]
    _ensemble(specs, data, checkpoints=checkpoints)
    alone = Checkpoint(tmp_path / "alone.pt", specs[1].run_id)
    train(specs[1], data, checkpoint=alone)
    saved = checkpoints[1].load()["trainer"]["optimizer"]
    expected = alone.load()["trainer"]["optimizer"]
    assert saved["state"].keys() == expected["state"].keys()
    for i, entry in expected["state"].items():
        assert saved["state"][i].keys() == entry.keys()
        assert saved["state"][i]["step"] == entry["step"]
        assert saved["state"][i]["step"].dtype == entry["step"].dtype
        torch.testing.assert_close(saved["state"][i]["exp_avg"], entry["exp_avg"])
        # a checkpoint holds the member's own numbers, not all members' storage
        assert saved["state"][i]["exp_avg"].untyped_storage().nbytes() == \
            entry["exp_avg"].untyped_storage().nbytes()


def test_a_user_optimizer_steps_alone_beside_fused_members(data):
    specs = _specs("sgd", [{}, {}]) + _specs("momentum", [{}])
    user = _specs("tests.helpers.optimizers:PlainSGD", [{}], lrs=(0.02,))
    results, ensemble = _ensemble(specs + user, data)
    assert len(ensemble.optimizers.alone) == 1 and len(ensemble.optimizers.fused) == 2
    for spec in specs + user:
        assert_same_history(train(spec, data).history, results[spec.run_id].history, 1e-9)


def test_rule_for_declines_what_it_does_not_cover():
    p = [torch.zeros(2, requires_grad=True)]
    assert rule_for(torch.optim.SGD(p, lr=0.1, maximize=True)) is None
    assert rule_for(torch.optim.LBFGS(p)) is None
    assert rule_for(torch.optim.SGD([{"params": p}, {"params": [torch.zeros(1)]}], lr=1)) is None
    assert rule_for(torch.optim.Adam(p)) is not None


def _ops_per_step(size: int, data) -> int:
    members = [("sgd", {"label": "momentum", "momentum": 0.9}, lr, 0)
               for lr in torch.logspace(-3, -1, size).tolist()]
    specs = []
    for name, options, lr, seed in members:
        specs += expand(validate_suite({**SUITE, "seeds": [seed], "matrix": {
            "model": ["mlp"], "optimizer": [{"name": name, **options}], "lr": [lr]}}))
    ensemble = Ensemble(specs, data)
    batches = data.stacked_train_batches(16, [m.trainer.generator for m in ensemble.members])
    xs, ys = next(batches)
    ensemble.step(ensemble.members, xs, ys)  # the first step creates state
    return count_ops(lambda: ensemble.step(ensemble.members, xs, ys))


def test_a_steps_operations_do_not_grow_with_the_members(data):
    counts = {k: _ops_per_step(k, data) for k in (2, 4, 16)}
    assert counts[2] == counts[4] == counts[16], counts


def test_the_default_ensemble_size_follows_the_gpus_memory_not_a_fixed_16():
    from cnnbench.execute.grouping import DEFAULT_MAX_SIZE, ensemble_limit

    assert ensemble_limit(None, torch.device("cuda:0")) > 10**6  # members_that_fit decides
    assert ensemble_limit(None, torch.device("cpu")) == DEFAULT_MAX_SIZE
    assert ensemble_limit(4, torch.device("cuda:0")) == 4


def test_ensemble_max_0_is_one_message_and_nothing_written(write_suite, tmp_path):
    from typer.testing import CliRunner

    from cnnbench.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(write_suite()), "--ensemble-max", "0",
                                      "--out", str(out)])
    assert result.exit_code == 2 and "--ensemble-max" in result.output
    assert "Traceback" not in result.output and not out.exists()
