"""How sure is the ranking: the probability that each optimizer is the best of its problem, by a
bootstrap over seeds in which every replicate re-selects each optimizer's lr.

One replicate draws the problem's seeds with replacement (the same draw for every optimizer,
since a seed means the same weights and data order for all of them), then, per optimizer, takes
the mean selection score of every lr over the drawn seeds, picks the best lr (ties to the
smaller), and reads the mean test metric there. The optimizer with the best test metric wins
the replicate (a tie shares it). So the noise of choosing the lr on a few seeds counts, which a
CI at a fixed lr leaves out. P(best) sums to 1 over a problem's optimizers; the mean rank over
replicates is given beside it. With one seed nothing can be resampled: both are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from cnnbench.analysis.paired import problem_groups
from cnnbench.analysis.protocol import lower_is_better, problems, scored_runs, worst_value

RESAMPLES = 2_000
# replicates per product: 500 keeps each table at 2 MB for 250 lrs (0.24 s at 50,000 runs,
# against 0.29 s for all 2,000 replicates at once, 8 MB of fresh pages per table)
REPLICATE_BLOCK = 500
RANKING_COLUMNS = ("optimizer", "p_best", "bootstrap_rank", "seeds")


def resampled_means(counts: np.ndarray, values: np.ndarray, present: np.ndarray,
                    worst: float) -> np.ndarray:
    """(replicates × lrs) means over the drawn seeds (`counts`: replicates × seeds, how often
    each seed was drawn); a drawn non-finite value makes the mean `worst`; NaN where no drawn
    seed has a value."""
    finite = present & np.isfinite(values)
    if finite.all():  # a full grid of finite values: one product; the seeds drawn weigh n
        return counts @ values.T / counts.sum(axis=1, keepdims=True)
    total = counts @ np.where(finite, values, 0.0).T
    weight = counts @ present.T
    infinite = counts @ (present & ~finite).T > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = total / weight
    means[infinite] = worst
    means[weight == 0] = np.nan
    return means


def _selected_test(val: np.ndarray, test: np.ndarray, index: np.ndarray, *,
                   lower: bool) -> np.ndarray:
    """(replicates × optimizers): per replicate and optimizer (`index`: each optimizer's lrs'
    columns of `val` and `test`, ascending, padded with one past the last), the test mean at
    the lr with the best validation mean (first = smaller lr on ties; an lr without values is
    never chosen unless all lack one)."""
    fill = math.inf if lower else -math.inf
    # every optimizer at once, the padding column never chosen: it comes last and holds the
    # fill (one argmax per optimizer took 0.1 s)
    pad = np.full((len(val), 1), fill)
    val = np.hstack([np.where(np.isnan(val), fill, val), pad])[:, index]
    chosen = val.argmin(axis=2) if lower else val.argmax(axis=2)
    return np.take_along_axis(np.hstack([test, pad])[:, index], chosen[..., None], axis=2)[..., 0]


def _replicate_tests(counts: np.ndarray, values: np.ndarray, lrs_of: list[np.ndarray],
                     worst: float, *, lower: bool) -> np.ndarray:
    """(replicates × optimizers): `_selected_test` of every replicate (`counts`), from the
    (optimizer, lr) rows of `values`, validation then test, a block of replicates at a time."""
    present, width = ~np.isnan(values), len(values) // 2
    longest = max(len(lrs) for lrs in lrs_of)
    index = np.array([np.pad(lrs, (0, longest - len(lrs)), constant_values=width)
                      for lrs in lrs_of])
    blocks = []
    for start in range(0, len(counts), REPLICATE_BLOCK):
        means = resampled_means(counts[start:start + REPLICATE_BLOCK], values, present, worst)
        blocks.append(_selected_test(means[:, :width], means[:, width:], index, lower=lower))
    return np.vstack(blocks)


def p_best(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame, *,
           resamples: int = RESAMPLES, seed: int = 0,
           scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (problem, optimizer): `p_best` (the share of bootstrap replicates it wins),
    `bootstrap_rank` (its mean rank over replicates, 1 = best) and the problem's seed count.
    Seeded, so deterministic."""
    metric = best.attrs["metric"]
    lower = lower_is_better(metric)
    worst = worst_value(metric)
    scored = scored_runs(runs, history, best, scores)
    rng = np.random.default_rng(seed)
    rows = []
    for problem, part in problem_groups(scored, problems(best)):
        seeds = sorted(part["seed"].unique())
        names = sorted(part["optimizer"].astype(str).unique())
        if len(seeds) < 2:
            rows += [{**problem, "optimizer": o, "p_best": math.nan,
                      "bootstrap_rank": math.nan, "seeds": len(seeds)} for o in names]
            continue
        draws = rng.integers(0, len(seeds), (resamples, len(seeds)))
        counts = np.zeros((resamples, len(seeds)))
        np.add.at(counts, (np.arange(resamples)[:, None], draws), 1.0)
        # (optimizer, lr) × seed tables, lrs ascending; NaN where a seed was not run
        cells = part.assign(optimizer=part["optimizer"].astype(str)).groupby(
            ["optimizer", "lr", "seed"], sort=True)[["score", "test_score"]].mean()
        tables = [cells[c].unstack("seed").reindex(columns=seeds) for c in cells]
        owner = tables[0].index.get_level_values("optimizer").to_numpy()
        # every (optimizer, lr) of the problem, validation then test, in one product per block
        # of replicates: a product per optimizer cost a thread hand-off each (a second at
        # 50,000 runs on 2 busy cores)
        values = np.vstack([t.to_numpy(float) for t in tables])
        tests = _replicate_tests(counts, values, [np.flatnonzero(owner == name)
                                                  for name in names], worst, lower=lower)
        tests = np.where(np.isnan(tests), worst, tests)
        oriented = tests if lower else -tests  # smaller is better from here on
        top = oriented == oriented.min(axis=1, keepdims=True)
        share = (top / top.sum(axis=1, keepdims=True)).mean(axis=0)
        ranks = stats.rankdata(oriented, axis=1, method="average").mean(axis=0)
        rows += [{**problem, "optimizer": name, "p_best": float(s), "bootstrap_rank": float(r),
                  "seeds": len(seeds)} for name, s, r in zip(names, share, ranks, strict=True)]
    return pd.DataFrame(rows, columns=[*problems(best), *RANKING_COLUMNS])
