"""Optimizer trajectories: the pure computation (paths end nearer the minimum; the saddle is
left along its unstable direction), the picture and the animation, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import CnnbenchError
from cnnbench.optim import OPTIMIZERS
from cnnbench.tools.trajectories import (
    DEFAULT_OPTIMIZERS,
    FUNCTIONS,
    parse_lrs,
    run_trajectories,
    summarize,
    trajectory,
)

runner = CliRunner()


@pytest.mark.parametrize("function", ["ravine", "rosenbrock", "beale"])
def test_every_optimizer_ends_nearer_the_minimum_with_its_default_lr(function):
    f = FUNCTIONS.get(function)()
    optimizers = OPTIMIZERS.names() if function == "ravine" else list(DEFAULT_OPTIMIZERS)
    for row in summarize(f, run_trajectories(f, optimizers, steps=min(f.steps, 300))):
        assert row["distance"] < row["start_distance"], row
        assert row["loss"] < f.value(f.start), row


def test_the_minimum_is_where_each_function_says():
    for name in ("ravine", "rosenbrock", "beale"):
        f = FUNCTIONS.get(name)()
        point = torch.tensor(f.target, dtype=torch.float64, requires_grad=True)
        f(point[0], point[1]).backward()
        assert f.value(f.target) == pytest.approx(0.0, abs=1e-12)
        assert point.grad.abs().max().item() < 1e-9


def test_adaptive_methods_leave_the_saddle_along_its_unstable_direction():
    f = FUNCTIONS.get("saddle")()
    paths = run_trajectories(f, ["sgd", "adagrad", "rmsprop", "adam"])
    rows = {r["optimizer"]: r for r in summarize(f, paths)}
    for name in ("adagrad", "rmsprop", "adam"):
        assert abs(rows[name]["y"]) > 2 and abs(rows[name]["x"]) < 1, rows[name]
        assert rows[name]["loss"] < f.value(f.start) - 4
        # and faster than plain gradient descent, still near the saddle when they are gone
        assert rows[name]["steps"] < rows["sgd"]["steps"]
    assert abs(rows["sgd"]["y"]) < 1


def test_sgd_oscillates_across_the_ravine_and_momentum_swings_slower():
    f = FUNCTIONS.get("ravine")()
    paths = run_trajectories(f, ["sgd", "momentum"])

    def crossings(path):
        return int(np.sum(np.diff(np.sign(path[:, 1])) != 0))

    sgd, momentum = paths["sgd"][1], paths["momentum"][1]
    assert crossings(sgd) == f.steps  # across the valley floor at every step
    assert crossings(momentum) < f.steps / 2
    assert np.linalg.norm(momentum[-1]) < np.linalg.norm(sgd[-1])  # and got further


def test_a_path_stops_when_it_diverges():
    f = FUNCTIONS.get("ravine")()
    path = trajectory(f, "sgd", lr=1.5, steps=200)  # unstable across the ravine: lr·2 > 2
    assert len(path) < 201 and np.isfinite(path).all()


def test_parse_lrs():
    assert parse_lrs("0.1", ["sgd", "adam"]) == {"sgd": 0.1, "adam": 0.1}
    assert parse_lrs("adam=0.3", ["sgd", "adam"]) == {"adam": 0.3}
    with pytest.raises(CnnbenchError, match="not among --optimizers"):
        parse_lrs("rmsprop=0.1", ["sgd"])
    with pytest.raises(CnnbenchError, match="one number or name=value"):
        parse_lrs("fast", ["sgd"])


def test_cli_writes_a_png_and_prints_where_each_ended(tmp_path):
    out = tmp_path / "pics" / "ravine.png"
    result = runner.invoke(app, ["trajectories", "--function", "ravine", "--optimizers",
                                 "sgd,momentum,adam,qhm", "--steps", "30", "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    for name in ("sgd", "momentum", "adam", "qhm"):
        assert name in result.output


def test_cli_writes_a_gif(tmp_path):
    pytest.importorskip("PIL")
    out = tmp_path / "saddle.gif"
    result = runner.invoke(app, ["trajectories", "--function", "saddle", "--optimizers",
                                 "sgd,adam", "--steps", "3", "--out", str(out), "--gif"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:6] in (b"GIF89a", b"GIF87a")


@pytest.mark.parametrize("args, words", [
    (["--function", "himmelblau"], ["unknown test function 'himmelblau'", "rosenbrock"]),
    (["--optimizers", "sgd,adma"], ["unknown optimizer 'adma'", "adam"]),
    (["--optimizers", "sgd", "--lr", "-1"], ["lr=-1.0", "(0, ∞)"]),
])
def test_cli_errors_are_exit_2(tmp_path, args, words):
    result = runner.invoke(app, ["trajectories", *args, "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert all(w in result.output for w in words), result.output
    assert not (tmp_path / "x.png").exists()
