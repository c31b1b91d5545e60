"""QHM, QHAdam and AggMo against their papers' update rules, computed by hand in plain Python.

The tiny problem: f(θ) = ½ Σ cᵢ θᵢ² with c = (1, 10), so ∇f = c·θ, from θ₀ = (1, −2).
"""

from __future__ import annotations

import math

import pytest
import torch

from cnnbench.optim import create_optimizer, effective_defaults

C = (1.0, 10.0)
THETA0 = (1.0, -2.0)


def run_registry(name: str, steps: int, **hparams) -> list[list[float]]:
    theta = torch.tensor(THETA0, dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(name, [theta], **hparams)
    c = torch.tensor(C, dtype=torch.float64)
    points = []
    for _ in range(steps):
        opt.zero_grad()
        (0.5 * (c * theta**2).sum()).backward()
        opt.step()
        points.append(theta.detach().tolist())
    return points


def grad(theta: list[float]) -> list[float]:
    return [c * t for c, t in zip(C, theta, strict=True)]


def qhm_by_hand(steps: int, lr: float, beta: float, nu: float, wd: float = 0.0):
    # Ma & Yarats (2019), QHM: g ← β g + (1−β) ∇;  θ ← θ − α [(1−ν) ∇ + ν g]
    theta, g, points = list(THETA0), [0.0, 0.0], []
    for _ in range(steps):
        d = [gi + wd * ti for gi, ti in zip(grad(theta), theta, strict=True)]
        g = [beta * gi + (1 - beta) * di for gi, di in zip(g, d, strict=True)]
        theta = [t - lr * ((1 - nu) * di + nu * gi)
                 for t, di, gi in zip(theta, d, g, strict=True)]
        points.append(theta)
    return points


def qhadam_by_hand(steps: int, lr: float, betas, nus, eps: float):
    # Ma & Yarats (2019), QHAdam, with Adam's bias corrections on g and s
    (b1, b2), (n1, n2) = betas, nus
    theta, g, s, points = list(THETA0), [0.0, 0.0], [0.0, 0.0], []
    for t in range(1, steps + 1):
        d = grad(theta)
        g = [b1 * gi + (1 - b1) * di for gi, di in zip(g, d, strict=True)]
        s = [b2 * si + (1 - b2) * di * di for si, di in zip(s, d, strict=True)]
        new = []
        for th, di, gi, si in zip(theta, d, g, s, strict=True):
            g_hat, s_hat = gi / (1 - b1**t), si / (1 - b2**t)
            num = (1 - n1) * di + n1 * g_hat
            den = math.sqrt((1 - n2) * di * di + n2 * s_hat) + eps
            new.append(th - lr * num / den)
        theta = new
        points.append(theta)
    return points


def aggmo_by_hand(steps: int, lr: float, betas):
    # Lucas et al. (2019): v⁽ⁱ⁾ ← β⁽ⁱ⁾ v⁽ⁱ⁾ − ∇;  θ ← θ + (γ/K) Σᵢ v⁽ⁱ⁾
    theta, points = list(THETA0), []
    v = [[0.0, 0.0] for _ in betas]
    for _ in range(steps):
        d = grad(theta)
        v = [[b * vj - dj for vj, dj in zip(vi, d, strict=True)]
             for b, vi in zip(betas, v, strict=True)]
        theta = [t + lr / len(betas) * sum(vi[j] for vi in v) for j, t in enumerate(theta)]
        points.append(theta)
    return points


def assert_paths_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g == pytest.approx(w, rel=1e-12, abs=1e-12)


def test_qhm_follows_the_paper_with_its_defaults():
    assert effective_defaults("qhm") | {"lr": None} == {
        "lr": None, "momentum": 0.999, "nu": 0.7, "weight_decay": 0.0}
    assert_paths_equal(run_registry("qhm", 5, lr=0.05), qhm_by_hand(5, 0.05, 0.999, 0.7))


def test_qhm_other_values_and_coupled_weight_decay():
    got = run_registry("qhm", 4, lr=0.1, momentum=0.9, nu=0.5, weight_decay=0.1)
    assert_paths_equal(got, qhm_by_hand(4, 0.1, 0.9, 0.5, wd=0.1))


def test_qhadam_follows_the_paper_with_its_defaults():
    defaults = effective_defaults("qhadam")
    assert tuple(defaults["betas"]) == (0.995, 0.999) and tuple(defaults["nus"]) == (0.7, 1.0)
    got = run_registry("qhadam", 5, lr=0.01)
    assert_paths_equal(got, qhadam_by_hand(5, 0.01, (0.995, 0.999), (0.7, 1.0), 1e-8))


def test_qhadam_default_is_not_adam_but_nu_one_is():
    adam = run_registry("adam", 3, lr=0.01, betas=(0.995, 0.999))
    assert run_registry("qhadam", 3, lr=0.01)[-1] != pytest.approx(adam[-1], rel=1e-6)
    assert_paths_equal(run_registry("qhadam", 3, lr=0.01, nus=(1.0, 1.0)), adam)


def test_aggmo_follows_the_paper_with_its_defaults():
    assert tuple(effective_defaults("aggmo")["betas"]) == (0.0, 0.9, 0.99)
    assert_paths_equal(run_registry("aggmo", 5, lr=0.02), aggmo_by_hand(5, 0.02, (0.0, 0.9, 0.99)))


def test_aggmo_with_one_beta_is_heavy_ball_momentum():
    # K=1: θ ← θ + γ v, v ← β v − ∇, which is torch's SGD momentum (dampening 0)
    assert_paths_equal(run_registry("aggmo", 4, lr=0.02, betas=[0.9]),
                       run_registry("momentum", 4, lr=0.02))
