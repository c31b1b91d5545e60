"""Expected best after k trials (Dodge et al. 2019) against a direct simulation; the curves of a
results table and where they cross."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbench import analysis
from cnnbench.analysis import budget
from tests.helpers.results import grid, runs

SIMULATIONS = 100_000


def test_expected_max_matches_a_direct_simulation():
    rng = np.random.default_rng(1)
    observed = np.round(rng.uniform(0.1, 0.98, 12), 2)
    observed[3] = observed[7]  # a tie, as grids of runs produce
    observed[0] = 0.0  # a failed run at the worst accuracy
    ks = np.arange(1, len(observed) + 1)
    mean, std = analysis.expected_max(observed, ks)
    for k, m, s in zip(ks, mean, std, strict=True):
        draws = observed[rng.integers(0, len(observed), (SIMULATIONS, k))].max(axis=1)
        # within 4 standard errors of the simulated mean; the spread within 2%
        assert m == pytest.approx(draws.mean(), abs=4 * draws.std() / math.sqrt(SIMULATIONS))
        assert s == pytest.approx(draws.std(), rel=0.02, abs=1e-3)
    assert mean[0] == pytest.approx(observed.mean())  # one trial: the mean run
    assert np.all(np.diff(mean) >= 0) and mean[-1] <= observed.max()


def _reference_expected_max(values, ks):
    """The formula of the module docstring, one k at a time."""
    v = np.sort(np.asarray(values, float))
    share = np.arange(len(v) + 1) / len(v)
    mean = np.array([np.sum(v * np.diff(share**k)) for k in ks])
    second = np.array([np.sum(v**2 * np.diff(share**k)) for k in ks])
    return mean, np.sqrt(np.clip(second - mean**2, 0.0, None))


scores = st.lists(st.floats(0.0, 1.0) | st.sampled_from([0.0, 0.5, 0.9]), min_size=1,
                  max_size=40)


@settings(max_examples=60, deadline=None)
@given(scores, st.lists(st.integers(1, 60), min_size=1, max_size=20))
def test_expected_max_equals_the_formula_in_any_order_and_any_block_size(values, ks):
    mean, std = analysis.expected_max(values, ks)
    ref_mean, ref_std = _reference_expected_max(values, ks)
    assert mean == pytest.approx(ref_mean, abs=1e-12)
    assert std == pytest.approx(ref_std, abs=1e-6)
    # the blocks only bound memory: one k per block gives the same figures (a matrix product
    # of one row may round its last bit otherwise)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(budget, "BLOCK_CELLS", 1)
        small = analysis.expected_max(values, ks)
    assert small[0] == pytest.approx(mean, rel=1e-15, abs=1e-15)
    assert small[1] == pytest.approx(std, rel=1e-12, abs=1e-12)


def test_expected_max_keeps_the_digits_of_a_nearly_sure_maximum():
    # 500 runs, k up to 500: the best run is drawn almost surely and the std is tiny
    values = np.sort(np.random.default_rng(3).integers(5000, 10000, 500) / 10_000)
    ks = np.arange(1, 501)
    mean, std = analysis.expected_max(values, ks)
    exact = np.longdouble
    share = np.arange(501, dtype=exact) / exact(500)
    weights = np.diff(share[None, :] ** ks[:, None].astype(exact), axis=1)
    ref_mean = (weights * values.astype(exact)).sum(axis=1)
    ref_std = np.sqrt((weights * (values.astype(exact) - ref_mean[:, None]) ** 2).sum(axis=1))
    assert np.allclose(mean, ref_mean.astype(float), rtol=1e-15, atol=0)
    # E[v²] − E[v]² was 1.6e-11 off at the largest k
    assert np.allclose(std, ref_std.astype(float), rtol=1e-13, atol=0)


def test_expected_max_skips_an_infinite_value_whose_weight_underflows():
    with np.errstate(invalid="ignore"):  # the std of an infinite mean
        mean, _ = analysis.expected_max([-math.inf, 0.5, 0.7], [1, 2, 1000])
    assert mean[0] == -math.inf and mean[2] == pytest.approx(0.7)  # (1/3) ** 1000 == 0


def test_expected_best_of_a_loss_is_the_expected_minimum():
    losses = [0.3, 0.5, 0.9, 0.2]
    mean, _ = analysis.expected_best(losses, [1, 2, 50], lower=True)
    assert mean[0] == pytest.approx(np.mean(losses))
    assert mean[1] == pytest.approx(np.mean(np.minimum.outer(losses, losses)))
    assert mean[2] == pytest.approx(0.2, abs=1e-6)


def _table():
    # adam: good everywhere (safe with few trials); momentum: one great lr, one poor
    return runs(*grid("adam", {0.001: [0.90, 0.90], 0.01: [0.91, 0.91]}),
                *grid("momentum", {0.01: [0.70, 0.70], 0.1: [0.97, 0.97]}))


def test_budget_curves_per_optimizer_and_their_crossing():
    frame = _table()
    best = analysis.best_lr(frame)
    curves = analysis.budget_curves(frame, None, best)
    adam = curves[curves["optimizer"] == "adam"]
    assert adam["k"].tolist() == [1, 2, 3, 4] and set(adam["trials"]) == {4}
    assert adam["expected"].iloc[0] == pytest.approx(0.905)
    momentum = curves[curves["optimizer"] == "momentum"]["expected"].to_numpy()
    assert momentum[0] == pytest.approx(0.835)
    assert momentum[1] == pytest.approx(0.97 - 0.27 / 4)  # both draws poor: 1 in 4
    # k = 2: adam 0.91 − 0.01/4 = 0.9075 still leads momentum's 0.9025; k = 3: 0.909 < 0.936
    cross = analysis.crossings(curves, ["model"], lower=False)
    assert cross[["before", "after", "k"]].values.tolist() == [["adam", "momentum", 3]]


def test_a_failed_loss_run_keeps_the_curve_finite():
    frame = runs(*grid("sgd", {0.1: [0.8, None], 1.0: [0.6, 0.7]}))
    best = analysis.best_lr(frame, metric="val_loss")
    curve = analysis.budget_curves(frame, None, best)
    assert np.isfinite(curve["expected"]).all()
    # the failed run stands at the worst finite loss (1 − 0.6 = 0.4)
    assert curve["expected"].iloc[0] == pytest.approx(np.mean([0.2, 0.4, 0.4, 0.3]))
