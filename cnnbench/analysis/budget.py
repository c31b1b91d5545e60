"""Budget-aware comparison (Dodge et al. 2019, "Show Your Work"): the expected best validation
score after k trials, for k = 1 … the number of runs, and where two optimizers' curves cross.

A *trial* is one run of the (problem, optimizer): an lr of the grid with a seed. The estimator
treats the observed runs as the distribution a random search draws from: the expected maximum of
k draws with replacement from N scores v(1) ≤ … ≤ v(N) is

    E[max_k] = Σ_i v(i) · ((i/N)^k − ((i−1)/N)^k),

the exact mean of the maximum under the empirical distribution (so a direct simulation that
draws k of the runs matches it; tests/test_budget.py checks that). Its spread comes from the
same weights w_i: Var = Σ (v(i) − v(N))² w_i − (E − v(N))², the values shifted by the largest so
that a nearly sure maximum keeps its digits. For a loss the curve is the expected minimum.

A failed run scores the worst value, as in the protocol; for a loss that is +inf, which would
make every expectation infinite, so here it stands at the worst finite loss of its problem (a
failed run is at least that bad), and the curve stays comparable.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cnnbench.analysis.paired import problem_groups
from cnnbench.analysis.protocol import lower_is_better, problems, scored_runs

CURVE_COLUMNS = ("optimizer", "k", "trials", "expected", "std")
# expected_max's working set: (k × N) floats per block, 256 KB. Blocks that stay in the cache
# took 0.2 s at 100 curves of 500 runs, against 0.33 s for 8 MB blocks (fresh pages each)
BLOCK_CELLS = 1 << 15


def expected_max(values: Sequence[float], ks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Dodge et al.'s expected maximum of k draws (with replacement) from `values`, and its
    standard deviation, for each k in `ks`."""
    v = np.sort(np.asarray(values, float))
    n = len(v)
    if n == 0:
        raise ValueError("no values to draw from")
    share = np.arange(n + 1) / n
    ks = np.asarray(ks, float)
    order = np.argsort(ks, kind="stable")
    steps, step_of = np.unique(np.diff(ks[order], prepend=0.0), return_inverse=True)
    # share ** step once per distinct step (ks = 1, 2, … have one), each with a scalar
    # exponent: numpy's array-exponent power rounds differently in the last bit
    powers = np.vstack([share**step for step in steps])
    finite = bool(np.isfinite(v).all())
    # summed by parts, E[max_k] = v(N) − Σ_{i<N} (i/N)^k (v(i+1) − v(i)): one matrix product
    # per block instead of the weights' difference and two weighted sums (0.25 s → 0.15 s at
    # 100 curves of 500 runs). The variance comes from u = v − v(N) ≤ 0, whose moments stay
    # small where the max is nearly sure: E[v²] − E[v]² lost 5 digits of the std there
    rises = np.column_stack([np.diff(v), np.diff((v - v[-1]) ** 2)]) if finite else None
    mean, variance = np.empty(len(ks)), np.empty(len(ks))
    cdf = np.ones(n + 1)
    rows = max(1, BLOCK_CELLS // (n + 1))
    # evenly spaced ks (1, 2, … in every report): a block is the last block's cdf times one
    # ladder share^s, share^2s, … share^(rows·s), computed once (numpy's running product along
    # the rows was 0.1 s of 0.15 at 100 curves of 500 runs)
    ladder = np.cumprod(np.repeat(powers, rows, axis=0), axis=0) if len(steps) == 1 else None
    for start in range(0, len(ks), rows):
        block = order[start:start + rows]
        # cdf = share ** k, stepped up k by k (O(N) per k): one (k × N) block at a time, so
        # memory stays bounded however many runs a group has
        if ladder is not None:
            cdfs = cdf * ladder[:len(block)]
        else:
            cdfs = np.cumprod(np.vstack([cdf, powers[step_of[start:start + rows]]]), axis=0)[1:]
        cdf = cdfs[-1]
        if finite:
            below = cdfs[:, 1:n] @ rises
            mean[block], variance[block] = v[-1] - below[:, 0], -below[:, 1] - below[:, 0] ** 2
            continue
        # an infinite value: the weights P(the max is the i-th smallest) one by one, skipping
        # 0 · inf where a weight is 0
        weights = np.diff(cdfs, axis=1)
        with np.errstate(invalid="ignore"):
            mean[block] = np.nansum(weights * v, axis=1)
            variance[block] = np.nansum(weights * v**2, axis=1) - mean[block] ** 2
    return mean, np.sqrt(np.clip(variance, 0.0, None))


def expected_best(values: Sequence[float], ks: Sequence[int], *, lower: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The expected best of k draws: the maximum, or the minimum when `lower` is better."""
    if not lower:
        return expected_max(values, ks)
    mean, std = expected_max(-np.asarray(values, float), ks)
    return -mean, std


def budget_curves(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame, *,
                  scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (problem, optimizer, k): the expected best selection score after k trials,
    its std, and the number of trials run. `best` (a `best_lr` table) gives the groups, metric
    and epoch."""
    metric = best.attrs["metric"]
    lower = lower_is_better(metric)
    scored = scored_runs(runs, history, best, scores)
    problem_keys = problems(best)
    columns = [*problem_keys, *CURVE_COLUMNS]
    # the curves in problem, then optimizer order, from one sort: pandas calls per problem and
    # per curve took 0.1 s at 100 curves
    group = scored.groupby([*problem_keys, "optimizer"], sort=True).ngroup().to_numpy()
    order = np.argsort(group, kind="stable")
    order = order[group[order] >= 0]  # -1: a missing key, which groupby leaves out
    if not len(order):
        return pd.DataFrame(None, columns=columns)  # empty: object columns
    score = _failed_at_worst_finite(scored, problem_keys, lower=lower)[order]
    starts = np.flatnonzero(np.diff(group[order], prepend=-1))
    sizes = np.diff(starts, append=len(order))
    means, stds = zip(*(expected_best(score[start:start + n], np.arange(1, n + 1), lower=lower)
                        for start, n in zip(starts.tolist(), sizes.tolist(), strict=True)))
    first = scored.iloc[order[starts]]
    built = {c: np.repeat(first[c].to_numpy(), sizes) for c in (*problem_keys, "optimizer")}
    built |= {"k": np.concatenate([np.arange(1, n + 1) for n in sizes.tolist()]),
              "trials": np.repeat(sizes, sizes), "expected": np.concatenate(means),
              "std": np.concatenate(stds)}
    return pd.DataFrame(built, columns=columns)


def _failed_at_worst_finite(scored: pd.DataFrame, problem_keys: list[str], *,
                            lower: bool) -> np.ndarray:
    """The runs' scores, with a non-finite one (a failed loss run is +inf) at the worst finite
    score of its problem, where the problem has one."""
    score = scored["score"].to_numpy(float)
    finite = pd.Series(np.where(np.isfinite(score), score, np.nan), index=scored.index)
    grouped = finite.groupby([scored[k] for k in problem_keys], sort=False) if problem_keys \
        else finite.groupby(np.zeros(len(finite)))
    worst = grouped.transform("max" if lower else "min").to_numpy()
    return np.where(np.isfinite(score) | np.isnan(worst), score, worst)


def crossings(curves: pd.DataFrame, keys: Sequence[str], *, lower: bool) -> pd.DataFrame:
    """Where two optimizers' expected-best curves (from `budget_curves`: k = 1 … trials) cross:
    one row per change of leader, with `k` the first trial count at which `after` leads
    (`before` led below it), compared over the k both curves reach. Exact ties do not change
    the leader."""
    keys = list(keys)
    rows = []
    for problem, part in problem_groups(curves, keys):
        # one sort per problem, not one per curve (0.04 s at 100 curves): k = 1, 2, … the
        # trials run
        ordered = part.sort_values(["optimizer", "k"], kind="stable")
        names = ordered["optimizer"].to_numpy()
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
        by_optimizer = dict(zip(names[starts].tolist(), np.split(
            ordered["expected"].to_numpy(float), starts[1:]), strict=True))
        for a, b in itertools.combinations(sorted(by_optimizer), 2):
            n = min(len(by_optimizer[a]), len(by_optimizer[b]))
            ea, eb = by_optimizer[a][:n], by_optimizer[b][:n]
            with np.errstate(invalid="ignore"):
                gap = ea - eb if not lower else eb - ea  # > 0: a leads
                tied = ~np.isfinite(gap) | (np.abs(gap) <= 1e-12 * np.maximum(1.0, np.abs(ea)))
            untied = np.flatnonzero(~tied)
            a_leads = gap[untied] > 0
            for i in np.flatnonzero(a_leads[1:] != a_leads[:-1]) + 1:  # the leader changes
                rows.append({**problem, "first": a, "second": b, "k": int(untied[i]) + 1,
                             "before": a if a_leads[i - 1] else b,
                             "after": a if a_leads[i] else b})
    return pd.DataFrame(rows, columns=[*keys, "first", "second", "k", "before", "after"])
