"""Picking along one group's lr grid: the best lr, how sensitive the score is to it, the
bootstrap CI of the test metric over seeds, and every group's figures at its best lr in one
pass (the protocol in protocol.py)."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

BOOTSTRAP_RESAMPLES = 10_000


def pick_best(lrs: Sequence[float], scores: Sequence[float], *, lower: bool) -> float:
    """The lr with the best score; ties go to the smaller lr."""
    lrs, scores = _by_lr(lrs, scores)
    best = np.nanmin(scores) if lower else np.nanmax(scores)
    return float(lrs[scores == best][0])


def _by_lr(lrs: Sequence[float], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Both as float arrays, in lr order (numpy: best_lr calls this once per group)."""
    lrs, scores = np.asarray(lrs, float), np.asarray(scores, float)
    order = np.argsort(lrs, kind="stable")
    return lrs[order], scores[order]


def lr_sensitivity(lrs: Sequence[float], scores: Sequence[float], *, tolerance: float,
                   lower: bool) -> tuple[float, float]:
    """How much of the grid lies within `tolerance` of the best score, as (decades, share).

    Each grid point owns the stretch of log10(lr) nearer to it than to its neighbours (the ends
    own half a spacing), so on a log-uniform grid of n points an inner point owns 1/(n-1) of the
    span. A one-point grid has no span: (0, NaN)."""
    lrs, score = _by_lr(lrs, scores)
    logs = np.log10(lrs)
    best = score.min() if lower else score.max()
    good = score <= best + tolerance if lower else score >= best - tolerance
    span = logs[-1] - logs[0]
    if span == 0:
        return 0.0, math.nan
    mids = (logs[1:] + logs[:-1]) / 2
    widths = np.diff(np.concatenate([[logs[0]], mids, [logs[-1]]]))
    decades = float(widths[good].sum())
    return decades, decades / span


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean over seeds; NaN with fewer than 3 values."""
    return bootstrap_cis([values], level=level, resamples=resamples, seed=seed)[0]


def bootstrap_cis(groups: Sequence[Sequence[float]], *, level: float = 0.95,
                  resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
                  ) -> list[tuple[float, float]]:
    """`bootstrap_ci` of each group of values: the groups of n values all from one matrix
    product of the resamples' draw counts (one gather per group took 0.08 s at 100 groups),
    the same draws for every group of n."""
    found = [(math.nan, math.nan)] * len(groups)
    sized: dict[int, list[int]] = {}
    for i, values in enumerate(groups):
        if len(values) >= 3:
            sized.setdefault(len(values), []).append(i)
    tail = (1 - level) / 2
    for n, members in sized.items():
        values = np.array([groups[i] for i in members], float)  # groups × n
        counts = _draw_counts(n, resamples, seed)
        means = counts @ np.where(np.isinf(values), 0.0, values).T / n
        # a drawn infinite value (a failed loss run) makes the mean infinite, as summed
        above, below = (counts @ (values == bound).T > 0 for bound in (math.inf, -math.inf))
        means[above], means[below], means[above & below] = math.inf, -math.inf, math.nan
        # inverted_cdf never interpolates, so an infinite (failed) value cannot turn into NaN
        lo, hi = np.quantile(means, [tail, 1 - tail], axis=0, method="inverted_cdf")
        for i, low, high in zip(members, lo.tolist(), hi.tolist(), strict=True):
            found[i] = (low, high)
    return found


@functools.lru_cache(maxsize=8)
def _draw_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """The bootstrap's (resamples × n) counts of how often each of n seeds is drawn: the same
    for every group of n seeds, so drawn once; read-only."""
    draws = np.random.default_rng(seed).integers(0, n, (resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
    counts.flags.writeable = False
    return counts


def _mean(values: np.ndarray) -> float:
    """`Series.mean` exactly: NaNs summed as 0 in place, over the count of the rest."""
    missing = np.isnan(values)
    if missing.all():  # also empty
        return math.nan
    return np.where(missing, 0.0, values).sum() / (len(values) - missing.sum())


def _std(values: np.ndarray) -> float:
    """`Series.std(ddof=1)` of values without NaN, exactly (pandas' two-pass formula)."""
    return np.sqrt(((values.sum() / len(values) - values) ** 2).sum() / (len(values) - 1))


def at_best_lr(data: pd.DataFrame, keys: list[str], lower: bool, tolerance: float
                ) -> list[dict]:
    """Per group, in sorted group order: its best lr and the figures of its runs there.

    One sort puts each (group, lr)'s runs next to each other in run order, so a group's runs at
    its best lr are one slice of numpy arrays (pandas per group took 0.4 s at 100 groups); the
    means and std are pandas' own formulas, so every figure is what the Series gave."""
    codes = data.groupby(keys, sort=True).ngroup().to_numpy()
    lr = data["lr"].to_numpy(float)
    kept = np.flatnonzero((codes >= 0) & ~np.isnan(lr))
    order = kept[np.lexsort((lr[kept], codes[kept]))]  # stable: runs in run order
    group, rate = codes[order], lr[order]
    starts = np.flatnonzero(np.r_[True, (group[1:] != group[:-1]) | (rate[1:] != rate[:-1])])
    ends = np.r_[starts[1:], len(order)]
    # the grid's mean scores, as lr_curve's groupby has them
    grid = data["score"].iloc[kept].groupby([codes[kept], lr[kept]], sort=True).mean()
    grid_scores = grid.to_numpy(float)
    firsts = np.flatnonzero(np.r_[True, group[starts][1:] != group[starts][:-1]])
    lasts = np.r_[firsts[1:], len(starts)]
    columns = {c: data[c].to_numpy(float) for c in (
        "score", "test_score", "s_per_epoch", "train_s", "time_to_target_s",
        "flops_to_target", "peak_bytes")}
    out, tests = [], []
    for first, last in zip(firsts, lasts, strict=True):
        lrs, scores = rate[starts[first:last]], grid_scores[first:last]
        best = pick_best(lrs, scores, lower=lower)
        decades, share = lr_sensitivity(lrs, scores, tolerance=tolerance, lower=lower)
        block = first + int(np.flatnonzero(lrs == best)[0])
        at = {c: v[order[starts[block]:ends[block]]] for c, v in columns.items()}
        test, reached = at["test_score"], at["time_to_target_s"]
        reached = reached[~np.isnan(reached)]
        flops = at["flops_to_target"]
        tests.append(test)
        peak = at["peak_bytes"]
        out.append({
            "best_lr": best, "score": _mean(at["score"]), "test_mean": _mean(test),
            "test_std": _std(test) if len(test) > 1 else math.nan,
            "test_ci_lo": math.nan, "test_ci_hi": math.nan, "seeds": len(test),
            "grid_points": len(lrs), "lr_min": lrs.min(), "lr_max": lrs.max(),
            "on_edge": len(lrs) > 1 and best in (lrs.min(), lrs.max()),
            "sensitivity_decades": decades, "sensitivity_share": share,
            "s_per_epoch": _mean(at["s_per_epoch"]), "train_s": _mean(at["train_s"]),
            "time_to_target_s": _mean(reached), "target_reached": len(reached),
            "flops_to_target": _mean(flops[~np.isnan(flops)]),
            "peak_bytes": np.nanmax(peak) if (~np.isnan(peak)).any() else math.nan})
    for row, (lo, hi) in zip(out, bootstrap_cis(tests), strict=True):
        row["test_ci_lo"], row["test_ci_hi"] = lo, hi
    return out
