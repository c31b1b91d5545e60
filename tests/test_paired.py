"""Paired comparisons per seed and P(best) by a bootstrap that re-selects the lr, on hand-built
results with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cnnbench import analysis
from tests.helpers.results import grid, run, runs

SEED_EFFECT = [0.0, 0.04, -0.03, 0.06, -0.05]


def _shifted(optimizer: str, lr: float, shift: float, noise=(0, 0, 0, 0, 0)) -> list[dict]:
    """Five seeds sharing a seed effect (same weights and data order), moved by `shift`."""
    return [run(optimizer=optimizer, lr=lr, seed=s, val_acc=0.85 + e + shift + n)
            for s, (e, n) in enumerate(zip(SEED_EFFECT, noise, strict=True))]


def _problem():
    return runs(*_shifted("adam", 0.01, 0.02, (0.001, -0.001, 0.002, 0.0, -0.002)),
                *_shifted("adam", 0.1, -0.2),
                *_shifted("momentum", 0.1, 0.0), *_shifted("momentum", 1.0, -0.3),
                *_shifted("sgd", 0.1, 0.019, (0.02, -0.03, 0.01, -0.02, 0.015)))


def test_best_optimizer_against_each_other_paired_per_seed_with_holm():
    frame = _problem()
    table = analysis.paired_comparisons(frame, None, analysis.best_lr(frame))
    assert table["best"].unique().tolist() == ["adam"]
    assert table["other"].tolist() == ["momentum", "sgd"]
    momentum, sgd = table.to_dict("records")
    assert momentum["best_lr"] == 0.01 and momentum["other_lr"] == 0.1
    assert momentum["pairing"] == "paired" and momentum["seeds"] == 5
    adam = frame[(frame["optimizer"] == "adam") & (frame["lr"] == 0.01)]["test_acc"].to_numpy()
    mom = frame[(frame["optimizer"] == "momentum") & (frame["lr"] == 0.1)]["test_acc"]
    reference = stats.ttest_rel(adam, mom.to_numpy())
    assert momentum["p"] == pytest.approx(reference.pvalue)
    assert momentum["diff"] == pytest.approx(0.02) and momentum["ci_lo"] > 0
    assert momentum["verdict"] == "better"
    # the seed effect would swamp an unpaired test of the same numbers
    assert analysis.welch(mom.to_numpy(), adam).p > 0.05
    assert sgd["verdict"] == "not separable"
    assert sorted(table["p_holm"]) == pytest.approx(sorted(analysis.holm(table["p"])))


def test_a_loss_selects_and_judges_downwards():
    frame = _problem()
    table = analysis.paired_comparisons(frame, None, analysis.best_lr(frame, metric="val_loss"))
    row = table[table["other"] == "momentum"].iloc[0]
    assert row["diff"] == pytest.approx(-0.02) and row["verdict"] == "better"


def test_one_seed_claims_no_test():
    frame = runs(*grid("adam", {0.01: [0.9]}), *grid("sgd", {0.1: [0.5]}))
    best = analysis.best_lr(frame)
    row = analysis.paired_comparisons(frame, None, best).iloc[0]
    assert row["verdict"] == "no test" and math.isnan(row["p"]) and row["seeds"] == 1
    assert "1 seed" in analysis.seed_notes(best)[0]
    assert "2 seeds" in analysis.seed_notes(analysis.best_lr(runs(
        *grid("adam", {0.01: [0.9, 0.8]}))))[0]


def test_no_seed_in_common_falls_back_to_welch_and_says_so():
    frame = runs(*[run(optimizer="adam", seed=s, val_acc=0.9 + 0.01 * s) for s in (0, 1, 2)],
                 *[run(optimizer="sgd", seed=s, val_acc=0.5 + 0.01 * s) for s in (3, 4, 5)])
    result = analysis.conclusions(frame, None, analysis.best_lr(frame))
    row = result.paired.iloc[0]
    assert row["pairing"] == "unpaired" and row["test"] == "welch"
    assert row["diff"] == pytest.approx(0.91 - 0.54) and row["verdict"] == "better"
    assert any("no pairing possible" in note for note in result.notes)


def test_p_best_sums_to_one_and_counts_lr_selection_noise():
    frame = _problem()
    table = analysis.p_best(frame, None, analysis.best_lr(frame))
    assert table["p_best"].sum() == pytest.approx(1.0)
    assert table.set_index("optimizer")["p_best"].idxmax() == "adam"
    assert table["bootstrap_rank"].between(1, 3).all()
    assert table.equals(analysis.p_best(frame, None, analysis.best_lr(frame)))  # seeded

    # A's best lr (by a hair on validation) is poor on test, its runner-up lr is great: a CI
    # at the chosen lr says A loses to B always; re-selecting the lr per replicate does not
    a = [run(optimizer="a", lr=0.1, seed=s, val_acc=0.9, test_acc=0.95) for s in range(5)]
    a += [run(optimizer="a", lr=1.0, seed=s, val_acc=v, test_acc=0.5)
          for s, v in enumerate([0.99, 0.85, 0.87, 0.88, 0.94])]
    b = [run(optimizer="b", lr=0.1, seed=s, val_acc=0.8) for s in range(5)]
    frame = runs(*a, *b)
    best = analysis.best_lr(frame)
    assert best.set_index("optimizer").loc["a", "best_lr"] == 1.0
    share = analysis.p_best(frame, None, best).set_index("optimizer")["p_best"]
    assert 0.05 < share["a"] < 0.95 and share.sum() == pytest.approx(1.0)


def test_p_best_with_one_seed_is_not_estimated():
    frame = runs(*grid("adam", {0.01: [0.9]}), *grid("sgd", {0.1: [0.5]}))
    table = analysis.p_best(frame, None, analysis.best_lr(frame))
    assert table["p_best"].isna().all()


def test_resampled_means_with_a_failed_loss():
    counts = np.array([[1.0, 1.0], [2.0, 0.0]])
    values = np.array([[0.2, math.inf]])
    present = np.array([[True, True]])
    means = analysis.ranking.resampled_means(counts, values, present, math.inf)
    assert means[:, 0].tolist() == [math.inf, 0.2]


def test_p_best_by_a_loss_with_failed_runs(recwarn):
    # sgd's great lr has a diverged seed (+inf loss): it is selected, and wins, only in the
    # replicates that do not draw that seed; else sgd falls back to its poor lr 1.0
    frame = runs(*grid("adam", {0.01: [0.9, 0.91, 0.89]}),
                 *grid("sgd", {0.1: [0.95, None, 0.96], 1.0: [0.5, 0.5, 0.5]}))
    best = analysis.best_lr(frame, metric="val_loss")
    share = analysis.p_best(frame, None, best).set_index("optimizer")["p_best"]
    assert share.sum() == pytest.approx(1.0)
    assert 0.2 < share["adam"] < 0.9  # sgd wins only where seed 1 is not drawn: (2/3)³ ≈ 0.30
    assert share["sgd"] == pytest.approx((2 / 3) ** 3, abs=0.04)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
