"""Schedules give the expected lr sequence per optimizer step; bad options fail before any run;
the history's `lr` column is the lr the epoch's last step used."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.optim.schedules import SCHEDULES, create_schedule

runner = CliRunner()


def lrs(spec, *, epochs: int = 3, steps_per_epoch: int = 4, lr: float = 1.0) -> list[float]:
    """The lr each optimizer step uses, over the whole run."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    schedule = create_schedule(spec, opt, epochs=epochs, steps_per_epoch=steps_per_epoch)
    used = []
    for _ in range(epochs * steps_per_epoch):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return used


def cosine_at(t: int, total: int, eta_min: float = 0.0) -> float:
    return eta_min + (1 - eta_min) * (1 + math.cos(math.pi * t / total)) / 2


def test_all_schedules_are_registered():
    assert SCHEDULES.names() == ["constant", "cosine", "exponential", "multistep", "onecycle",
                                 "step"]


@pytest.mark.parametrize("spec, expected", [
    ("constant", [1.0] * 12),
    ({"name": "step", "step_size": 1, "gamma": 0.5}, [1.0] * 4 + [0.5] * 4 + [0.25] * 4),
    ({"name": "step", "step_size": 2}, [1.0] * 8 + [0.1] * 4),
    ({"name": "multistep", "milestones": [1, 2], "gamma": 0.1}, [1.0] * 4 + [0.1] * 4
     + [0.01] * 4),
    ({"name": "exponential", "gamma": 0.5}, [0.5 ** (k / 4) for k in range(12)]),
    ({"name": "cosine"}, [cosine_at(k, 12) for k in range(12)]),
    ({"name": "cosine", "eta_min": 0.1}, [cosine_at(k, 12, 0.1) for k in range(12)]),
    # warm-up over 1 epoch = 4 steps: lr·(k+1)/4, then cosine over the other 8 steps
    ({"name": "cosine", "warmup_epochs": 1}, [0.25, 0.5, 0.75, 1.0]
     + [cosine_at(k, 8) for k in range(8)]),
    ({"name": "cosine", "warmup_epochs": 0.5}, [0.5, 1.0] + [cosine_at(k, 10) for k in range(10)]),
])
def test_lr_sequence(spec, expected):
    assert lrs(spec) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_onecycle_rises_to_the_grid_lr_then_anneals():
    used = lrs({"name": "onecycle", "pct_start": 0.25}, epochs=2, steps_per_epoch=10, lr=0.4)
    peak = used.index(max(used))
    assert used[0] == pytest.approx(0.4 / 25)
    assert max(used) == pytest.approx(0.4) and peak == 4  # 25 % of 20 steps, from step 0
    assert all(a < b for a, b in zip(used[:peak], used[1:peak + 1], strict=True))
    assert all(a > b for a, b in zip(used[peak:-1], used[peak + 1:], strict=True))
    assert used[-1] < 0.4 / 25


def test_onecycle_leaves_momentum_alone_unless_asked():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    create_schedule("onecycle", opt, epochs=1, steps_per_epoch=10)
    assert opt.param_groups[0]["momentum"] == 0.9
    create_schedule({"name": "onecycle", "cycle_momentum": True}, opt, epochs=1,
                    steps_per_epoch=10)
    assert opt.param_groups[0]["momentum"] == 0.95


@pytest.mark.parametrize("spec, words", [
    ({"name": "step"}, ["step_size"]),
    ({"name": "step", "step_size": 0}, ["step_size=0", "≥ 1"]),
    ({"name": "step", "step_size": 1, "gama": 0.5}, ["takes no 'gama'", "gamma"]),
    ({"name": "multistep", "milestones": [3, 1]}, ["milestones=[3, 1]", "rising"]),
    ({"name": "exponential", "gamma": 1.5}, ["gamma=1.5", "(0, 1]"]),
    ({"name": "cosine", "warmup_epochs": 3}, ["warmup_epochs=3", "[0, epochs=3)"]),
    ({"name": "onecycle", "pct_start": 1.0}, ["pct_start=1.0", "(0, 1)"]),
    ({"name": "coisne"}, ["unknown schedule 'coisne'", "cosine"]),
])
def test_bad_options_are_clear_errors(spec, words):
    with pytest.raises(CnnbenchError) as err:
        lrs(spec)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_bad_schedule_fails_validation_before_any_run(write_suite):
    suite = write_suite(train={"epochs": 2, "schedule": {"name": "cosine", "warmup_epochs": 5}})
    result = runner.invoke(app, ["validate", str(suite)])
    assert result.exit_code == 2
    assert "train.schedule" in result.output and "warmup_epochs=5" in result.output


def test_history_lr_is_the_lr_each_epoch_ended_with(write_suite, tmp_path):
    from cnnbench import load_results

    # 72 training images in batches of 24: 3 steps per epoch; lr halves every epoch
    suite = write_suite(train={"epochs": 3, "batch_size": 24,
                               "schedule": {"name": "step", "step_size": 1, "gamma": 0.5}},
                        matrix={"model": [{"name": "mlp", "hidden": 8}], "optimizer": ["sgd"],
                                "lr": [0.1]})
    result = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    _, history = load_results(tmp_path / "res")
    history = history.sort_values("epoch")
    assert list(history["step"]) == [0, 3, 6, 9]
    assert list(history["lr"]) == pytest.approx([0.1, 0.1, 0.05, 0.025])
