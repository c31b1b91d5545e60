"""The analysis protocol on hand-built results with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnbench import analysis
from cnnbench.errors import CnnbenchError
from tests.helpers.results import grid, history_for, run, runs


def test_best_lr_is_the_best_mean_over_seeds():
    frame = runs(*grid("sgd", {0.01: [0.5, 0.7], 0.1: [0.9, 0.8], 1.0: [0.85, 0.9]}))
    best = analysis.best_lr(frame)
    row = best.iloc[0]
    assert row["best_lr"] == 1.0  # 0.875 beats 0.85
    assert row["val_acc"] == pytest.approx(0.875)
    assert row["test_acc_mean"] == pytest.approx(0.875)
    assert row["test_acc_std"] == pytest.approx(np.std([0.85, 0.9], ddof=1))
    assert row["seeds"] == 2 and row["runs"] == 6 and row["ok"] == 6
    assert bool(row["on_edge"])


def test_ties_go_to_the_smaller_lr():
    frame = runs(*grid("sgd", {0.01: [0.5], 0.1: [0.9], 1.0: [0.9]}))
    assert analysis.best_lr(frame).iloc[0]["best_lr"] == 0.1


def test_a_diverged_run_counts_as_the_worst_value_not_dropped():
    # dropping the diverged seed would pick lr 0.1 (0.95); counting it as 0 gives 0.475
    frame = runs(*grid("sgd", {0.01: [0.6, 0.6], 0.1: [0.95, None], 1.0: [None, None]}))
    row = analysis.best_lr(frame).iloc[0]
    assert row["best_lr"] == 0.01
    assert (row["ok"], row["diverged"], row["failed"]) == (3, 3, 0)
    curve = analysis.lr_curve(frame).set_index("lr")
    assert curve.loc[0.1, "score"] == pytest.approx(0.475)
    assert curve.loc[0.1, "mean"] == pytest.approx(0.95)  # the spread of finished runs only
    assert curve.loc[1.0, "ok"] == 0 and math.isnan(curve.loc[1.0, "mean"])


def test_test_metric_at_the_best_lr_includes_failed_seeds():
    frame = runs(run(lr=0.1, seed=0, val_acc=0.9, test_acc=0.8),
                 run(lr=0.1, seed=1, status="error", val_acc=math.nan),
                 run(lr=0.01, seed=0, val_acc=0.1), run(lr=0.01, seed=1, val_acc=0.1))
    row = analysis.best_lr(frame).iloc[0]
    assert row["best_lr"] == 0.1 and row["failed"] == 1
    assert row["test_acc_mean"] == pytest.approx(0.4)


def test_nan_metric_of_an_ok_run_is_the_worst():
    frame = runs(run(lr=0.1, val_acc=math.nan), run(lr=0.01, val_acc=0.2))
    assert analysis.best_lr(frame).iloc[0]["best_lr"] == 0.01


def test_a_loss_is_lower_is_better_and_failed_runs_are_infinite():
    frame = runs(*grid("sgd", {0.01: [0.5], 0.1: [0.9], 1.0: [None]}))
    scores = analysis.run_scores(frame, metric="val_loss")
    assert scores["score"].iloc[-1] == math.inf
    row = analysis.best_lr(frame, metric="val_loss").iloc[0]
    assert row["best_lr"] == 0.1 and row["val_loss"] == pytest.approx(0.1)
    assert "test_loss_mean" in row


def test_single_seed_and_one_point_grid():
    row = analysis.best_lr(runs(run(lr=0.1, val_acc=0.7))).iloc[0]
    assert row["best_lr"] == 0.1 and not row["on_edge"] and row["grid_points"] == 1
    assert math.isnan(row["test_acc_std"]) and math.isnan(row["test_ci_lo"])
    assert row["sensitivity_decades"] == 0 and math.isnan(row["sensitivity_share"])


def test_groups_add_matrix_axes_that_vary():
    frame = runs(run(lr=0.1, batch="128"), run(lr=0.1, batch="full", run_id="x"))
    assert analysis.group_keys(frame) == ["model", "optimizer", "batch"]
    assert len(analysis.best_lr(frame)) == 2
    with pytest.raises(CnnbenchError, match="cannot group by nope"):
        analysis.group_keys(frame, ("nope",))


def test_batch_sizes_sort_by_value_with_full_last():
    frame = runs(*(run(lr=0.1, batch=b, run_id=b) for b in ("full", "128", "1", "32")))
    assert list(analysis.best_lr(frame)["batch"]) == ["1", "32", "128", "full"]
    assert list(analysis.lr_curve(frame)["batch"]) == ["1", "32", "128", "full"]


def test_unknown_metric_or_at_is_a_user_error():
    with pytest.raises(CnnbenchError, match="val_acc, val_loss"):
        analysis.best_lr(runs(run()), metric="test_acc")
    with pytest.raises(CnnbenchError, match="'final' or 'best'"):
        analysis.best_lr(runs(run()), at="last")


def test_at_best_reads_the_best_validation_epoch_from_history():
    frame = runs(run(lr=0.1, val_acc=0.5), run(lr=0.01, val_acc=0.6))
    history = history_for(frame)
    # lr 0.1 peaked at 0.9 in epoch 1 and fell back to 0.5
    peak = (history["run_id"] == frame["run_id"][0]) & (history["epoch"] == 1)
    history.loc[peak, ["val_acc", "test_acc"]] = [0.9, 0.85]
    assert analysis.best_lr(frame, history).iloc[0]["best_lr"] == 0.01
    row = analysis.best_lr(frame, history, at="best").iloc[0]
    assert row["best_lr"] == 0.1 and row["test_acc_mean"] == pytest.approx(0.85)
    with pytest.raises(CnnbenchError, match="needs the history"):
        analysis.best_lr(frame, at="best")


@pytest.mark.parametrize(("scores", "decades", "share"), [
    ([0.5, 0.9, 0.995, 1.0, 0.2], 2.0, 0.5),      # two inner points, 1 decade each
    ([1.0, 0.9, 0.5, 0.5, 0.5], 0.5, 0.125),      # an end point owns half a spacing
    ([1.0, 1.0, 1.0, 1.0, 1.0], 4.0, 1.0),
])
def test_lr_sensitivity_in_decades(scores, decades, share):
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    got = analysis.lr_sensitivity(lrs, scores, tolerance=0.01, lower=False)
    assert got == pytest.approx((decades, share))


def test_lr_sensitivity_of_a_loss_and_an_unsorted_grid():
    got = analysis.lr_sensitivity([1.0, 0.01, 0.1], [0.3, 0.2, 0.205], tolerance=0.01,
                                  lower=True)
    assert got == pytest.approx((1.5, 0.75))


def test_bootstrap_ci_is_deterministic_and_brackets_the_mean():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    lo, hi = analysis.bootstrap_ci(values)
    assert (lo, hi) == analysis.bootstrap_ci(values)
    # normal approximation: 3 ± 1.96 · sqrt(2 / 5)
    assert lo == pytest.approx(3 - 1.96 * math.sqrt(0.4), abs=0.15)
    assert hi == pytest.approx(3 + 1.96 * math.sqrt(0.4), abs=0.15)
    assert analysis.bootstrap_ci([0.7, 0.7, 0.7]) == pytest.approx((0.7, 0.7))
    assert all(math.isnan(v) for v in analysis.bootstrap_ci([1.0, 2.0]))
    lo, hi = analysis.bootstrap_ci([0.9, 0.9, math.inf])
    assert lo == pytest.approx(0.9) and hi == math.inf


def test_bootstrap_cis_of_many_groups_are_the_percentiles_of_resampled_means():
    rng = np.random.default_rng(4)
    groups = [rng.uniform(0.5, 0.9, n) for n in (20, 20, 5, 3, 2, 20)]
    found = analysis.bootstrap_cis(groups, resamples=2_000)
    for values, (lo, hi) in zip(groups, found, strict=True):
        if len(values) < 3:
            assert math.isnan(lo) and math.isnan(hi)
            continue
        # the same draws, gathered: the means of the drawn values themselves
        draws = np.random.default_rng(0).integers(0, len(values), (2_000, len(values)))
        means = values[draws].mean(axis=1)
        tail = (1 - 0.95) / 2
        assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [tail, 1 - tail],
                                                           method="inverted_cdf")), rel=1e-12)
    assert analysis.bootstrap_ci([-math.inf, 0.5, 0.6])[0] == -math.inf


def test_time_to_target_from_history_and_flops():
    frame = runs(run(lr=0.1, val_acc=0.9, train_flops_per_step=1e6),
                 run(lr=0.01, val_acc=0.5, train_flops_per_step=1e6))
    got = analysis.time_to_target(frame, history_for(frame), ("val_acc", 0.4))
    # the history climbs linearly: 0.45 at epoch 1 (1 s, step 10); 0.25 then 0.5 for the other
    assert got["time_to_target_s"].tolist() == [1.0, 2.0]
    assert got["steps_to_target"].tolist() == [10, 20]
    assert got["flops_to_target"].tolist() == [1e7, 2e7]
    never = analysis.time_to_target(frame, history_for(frame), ("val_acc", 0.95))
    assert never["time_to_target_s"].isna().all()


def test_time_to_target_from_the_suite_and_at_the_best_lr():
    frame = runs(run(lr=0.1, seed=0, time_to_target_s=1.0), run(lr=0.1, seed=1),
                 run(lr=0.01, val_acc=0.1))
    got = analysis.time_to_target(frame, history_for(frame))
    assert got["steps_to_target"].iloc[0] == 10 and math.isnan(got["flops_to_target"].iloc[0])
    row = analysis.best_lr(frame, history_for(frame)).iloc[0]
    assert row["time_to_target_s"] == 1.0 and row["target_reached"] == 1


def _nearest_step(history, run_id, seconds):
    """The step of a run's trained history row nearest in time (first on ties), row by row."""
    if math.isnan(seconds):
        return math.nan
    rows = history[(history["run_id"] == run_id) & (history["epoch"] >= 1)]
    return math.nan if rows.empty else float(
        rows.loc[(rows["elapsed_s"] - seconds).abs().idxmin(), "step"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([math.nan, 0.0, 0.5, 1.0, 1.5, 2.0, 7.0]), min_size=1,
                max_size=6), st.integers(1, 3))
def test_the_step_at_the_recorded_time_is_the_nearest_evaluation(seconds, epochs):
    frame = runs(*(run(lr=0.1, seed=i, time_to_target_s=t) for i, t in enumerate(seconds)))
    history = history_for(frame, epochs=epochs).sample(frac=1.0, random_state=0)  # any order
    got = analysis.time_to_target(frame, history)["steps_to_target"].tolist()
    want = [_nearest_step(history, r, t) for r, t in zip(frame["run_id"], seconds, strict=True)]
    assert got == pytest.approx(want, nan_ok=True)


def test_peak_bytes_prefers_cuda_then_rss_and_is_nan_when_absent():
    frame = runs(run(peak_cuda_allocated_bytes=100.0, peak_rss_bytes=5.0),
                 run(peak_cuda_allocated_bytes=None, peak_rss_bytes=7.0))
    assert analysis.peak_bytes(frame).tolist() == [100.0, 7.0]
    assert analysis.peak_bytes(runs(run())).isna().all()


COSTS = pd.DataFrame({"a": [1.0, 3.0, math.inf], "b": [2.0, 1.5, 5.0]},
                     index=["p1", "p2", "p3"])


def test_performance_profile_counts_problems_within_tau():
    profile = analysis.performance_profile(COSTS, [1.0, 2.0, 10.0])
    assert profile["a"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert profile["b"].tolist() == pytest.approx([2 / 3, 1.0, 1.0])
    default = analysis.performance_profile(COSTS)
    assert default.index[0] == 1.0 and default.index[-1] > 2.0


def test_mean_rank_with_ties_and_missing():
    assert analysis.mean_rank(COSTS).to_dict() == pytest.approx({"a": 5 / 3, "b": 4 / 3})
    tied = pd.DataFrame({"a": [1.0, np.nan], "b": [1.0, 2.0]})
    assert analysis.mean_rank(tied).to_dict() == pytest.approx({"a": 1.75, "b": 1.25})


def test_problem_costs_use_time_when_reached_else_error():
    rows = grid("sgd", {0.1: [0.9, 0.9]}) + grid("adam", {0.1: [0.8, 0.8]}) + \
        grid("sgd", {0.1: [0.5, 0.5]}, model="cnn") + grid("adam", {0.1: [0.75, 0.75]},
                                                          model="cnn")
    best = analysis.best_lr(runs(*rows))
    costs, name = analysis.problem_costs(best)
    assert name == "test error"
    assert costs.loc["cnn", "adam"] == pytest.approx(0.25)
    assert analysis.mean_rank(costs).to_dict() == {"adam": 1.5, "sgd": 1.5}
    timed = runs(*[dict(r, time_to_target_s=4.0) for r in rows])
    costs, name = analysis.problem_costs(analysis.best_lr(timed), cost="time")
    assert name == "seconds to target" and (costs == 4.0).all().all()


def test_learning_curves_average_seeds_at_the_best_lr():
    frame = runs(*grid("sgd", {0.01: [0.2, 0.2], 0.1: [0.8, 0.6]}))
    curves = analysis.learning_curves(frame, history_for(frame), analysis.best_lr(frame))
    assert set(curves["lr"]) == {0.1}
    assert curves["val_acc"].tolist() == pytest.approx([0.0, 0.35, 0.7])


def test_beyond_noise_is_welch_two_standard_errors():
    assert analysis.beyond_noise([0.9, 0.91, 0.89], [0.5, 0.51, 0.49]) is True
    assert analysis.beyond_noise([0.9, 0.91, 0.89], [0.9, 0.92, 0.88]) is False
    assert analysis.beyond_noise([0.9], [0.5]) is None
    assert analysis.beyond_noise([1.0, 1.0], [1.0, 1.0]) is False


def test_compare_matches_run_ids_then_configurations():
    a = runs(run(lr=0.1, seed=0, test_acc=0.90, s_per_epoch=2.0, peak_rss_bytes=100.0),
             run(lr=0.1, seed=1, test_acc=0.91, s_per_epoch=2.1, peak_rss_bytes=100.0),
             run(lr=0.5, seed=0))
    b = runs(run(lr=0.1, seed=0, test_acc=0.80, s_per_epoch=1.0, peak_rss_bytes=50.0),
             run(lr=0.1, seed=1, test_acc=0.81, s_per_epoch=1.05, peak_rss_bytes=50.0,
                 run_id="renamed"))
    table = analysis.compare(a, b)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["seeds"] == 2 and row["both_ok"] == 2
    assert row["time_ratio"] == pytest.approx(1.025 / 2.05)
    assert row["memory_ratio"] == pytest.approx(0.5)
    assert row["test_acc_diff"] == pytest.approx(-0.1)
    assert bool(row["test_acc_flag"])
    assert analysis.compare(a, runs(run(model="other"))).empty
