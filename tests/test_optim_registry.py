"""The optimizers registry: every entry steps a tiny model; hyper-parameters are checked early;
weight decay is coupled or decoupled as stated; user classes work through the CLI."""

from __future__ import annotations

import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.optim import OPTIMIZERS, create_optimizer, optimizer_def, resolve_hparams
from cnnbench.render.listing import weight_decay_note

runner = CliRunner()
ALL = OPTIMIZERS.names()


def test_registry_has_everything_the_lecture_covers():
    assert set(ALL) >= {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad",
                        "adadelta", "nadam", "radam", "adamax", "lbfgs", "qhm", "qhadam", "aggmo"}


@pytest.mark.parametrize("name", ALL)
def test_each_optimizer_takes_a_step_that_lowers_the_loss(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    # a small lr for every optimizer, so that one step must go downhill
    extra = {"max_iter": 4} if name == "lbfgs" else {}  # each L-BFGS step evaluates ≤ 4 times
    opt = create_optimizer(name, model.parameters(), lr=1e-3 if name != "adadelta" else 1.0,
                           **extra)
    before = [p.detach().clone() for p in model.parameters()]

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        return loss

    start = closure().item()
    for _ in range(3):
        opt.step(closure)
    with torch.no_grad():
        end = torch.nn.functional.cross_entropy(model(x), y).item()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert end < start


@pytest.mark.parametrize("hparams, words", [
    ({"lr": -0.1}, ["lr=-0.1", "(0, ∞)"]),
    ({"lr": 0.0}, ["lr=0.0", "(0, ∞)"]),
    ({"lr": 0.1, "betas": [0.9, 1.0]}, ["betas=[0.9, 1.0]", "[0, 1)"]),
    ({"lr": 0.1, "betas": [-0.1, 0.9]}, ["betas", "[0, 1)"]),
    ({"lr": 0.1, "weight_decay": -1e-4}, ["weight_decay=-0.0001", "[0, ∞)"]),
    ({"lr": 0.1, "eps": "tiny"}, ["eps='tiny'", "number"]),
])
def test_adam_values_are_checked_early(hparams, words):
    with pytest.raises(CnnbenchError) as err:
        resolve_hparams("adam", hparams)
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("name, hparams, words", [
    ("momentum", {"momentum": -0.9}, ["momentum=-0.9", "[0, 1)"]),
    ("qhm", {"nu": 1.5}, ["nu=1.5", "[0, 1]"]),
    ("qhadam", {"nus": [0.7, 2]}, ["nus", "[0, 1]"]),
    ("aggmo", {"betas": []}, ["betas=[]"]),
    ("rmsprop", {"alpha": 1.2}, ["alpha=1.2", "[0, 1]"]),
    ("adadelta", {"rho": True}, ["rho=True"]),
    ("qhadam", {"betas": [0.9, 0.99, 0.999]}, ["two betas"]),  # the class's own check, early
    ("nesterov", {"momentum": 0.0}, ["Nesterov"]),  # torch's own check, run early
])
def test_other_values_are_checked_early(name, hparams, words):
    with pytest.raises(CnnbenchError) as err:
        resolve_hparams(name, {"lr": 0.1, **hparams})
    assert all(w in str(err.value) for w in words), str(err.value)


def test_unknown_key_names_the_valid_ones():
    with pytest.raises(CnnbenchError, match="takes no 'beta1'.*valid: .*betas"):
        resolve_hparams("adam", {"lr": 0.1, "beta1": 0.9})


@pytest.mark.parametrize("name", [n for n in ALL if n != "lbfgs"])
def test_weight_decay_is_a_key_of_every_first_order_optimizer(name):
    assert resolve_hparams(name, {"lr": 0.1, "weight_decay": 5e-4})["weight_decay"] == 5e-4


def test_lbfgs_says_it_takes_no_weight_decay():
    assert weight_decay_note("lbfgs").startswith("none")
    with pytest.raises(CnnbenchError, match="takes no 'weight_decay'"):
        resolve_hparams("lbfgs", {"lr": 1.0, "weight_decay": 1e-4})


def test_coupled_and_decoupled_weight_decay_differ_as_stated():
    # zero loss gradient: only decay acts. Coupled (Adam): ∇ = λθ goes through Adam's
    # normalisation, a step of ≈ lr whatever λ is. Decoupled (AdamW): θ ← θ(1 − lr·λ), then
    # Adam's step on a zero gradient does nothing.
    lr, wd = 0.01, 0.1

    def after_one_step(name):
        theta = torch.tensor([2.0], requires_grad=True)
        opt = create_optimizer(name, [theta], lr=lr, weight_decay=wd)
        theta.grad = torch.zeros(1)
        opt.step()
        return theta.item()

    assert after_one_step("adam") == pytest.approx(2.0 - lr, rel=1e-6)
    assert after_one_step("adamw") == pytest.approx(2.0 * (1 - lr * wd), rel=1e-6)
    assert weight_decay_note("adam").startswith("coupled")
    assert weight_decay_note("adamw").startswith("decoupled")


def test_list_optimizers_shows_every_default():
    result = runner.invoke(app, ["list", "optimizers"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for text in ("qhm", "nu=0.7", "momentum=0.999", "nus=(0.7, 1.0)", "betas=(0.995, 0.999)",
                 "betas=(0.0, 0.9, 0.99)", "eps=1e-08", "line_search_fn=strong_wolfe",
                 "decoupled: θ ← θ − lr·λ·θ", "Ma & Yarats", "Lucas et al."):
        assert text in result.output, text


USER_OPTIMIZER = textwrap.dedent('''
    import torch

    class SignDescent(torch.optim.Optimizer):
        """θ ← θ − lr·scale·sign(∇)."""

        def __init__(self, params, lr=0.01, scale=1.0):
            super().__init__(params, {"lr": lr, "scale": scale})

        @torch.no_grad()
        def step(self, closure=None):
            loss = None
            if closure is not None:
                with torch.enable_grad():
                    loss = closure()
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad.sign(), alpha=-group["lr"] * group["scale"])
            return loss
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_optimizers.py").write_text(USER_OPTIMIZER)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_optimizers:SignDescent"
    sys.modules.pop("my_optimizers", None)


def test_user_optimizer_class_runs_through_the_cli(user_module, write_suite, tmp_path):
    from cnnbench import load_results

    suite = write_suite(matrix={"model": [{"name": "mlp", "hidden": 8}],
                                "optimizer": [{"name": user_module, "scale": 0.5}],
                                "lr": [0.01]},
                        train={"epochs": 1, "batch_size": 32})
    result = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "res")])
    assert result.exit_code == 0, result.output
    runs, _ = load_results(tmp_path / "res")
    assert list(runs["status"]) == ["ok"] and list(runs["optimizer_name"]) == [user_module]
    assert '"scale": 0.5' in runs["hparams"].iloc[0]


def test_user_optimizer_unknown_key_is_exit_2_before_running(user_module, write_suite, tmp_path):
    suite = write_suite(matrix={"model": ["mlp"],
                                "optimizer": [{"name": user_module, "scael": 0.5}], "lr": [0.01]})
    result = runner.invoke(app, ["run", str(suite), "--out", str(tmp_path / "res")])
    assert result.exit_code == 2
    assert "takes no 'scael'" in result.output and "scale" in result.output
    assert not (tmp_path / "res").exists()


def test_not_an_optimizer_class_is_a_clear_error():
    with pytest.raises(CnnbenchError, match="not a torch.optim.Optimizer subclass"):
        optimizer_def("collections:OrderedDict")
