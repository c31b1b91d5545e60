"""Paired comparisons over seeds: on each problem, the best optimizer against every other, each
at its own best lr, by the difference of their test metrics seed by seed.

Pairing is sound because, for a given model and seed, every optimizer and lr starts from the
same initial weights and sees the same data order (`torch.manual_seed(seed)` before the model is
built, a data generator seeded with the seed; tested in tests/test_paired_seeds.py). Seed noise
shared by both sides then cancels in the difference, which is what makes paired tests sharper
than unpaired ones at the same number of seeds.

Per comparison: the mean difference (best − other, test metric, failed runs at the worst value),
its 95% t CI, a paired t-test (or Wilcoxon signed-rank), Holm's correction over the comparisons
of a problem, and a verdict: `better`, `worse` (the other one wins on test), `not separable`, or
`no test` (one seed). Without seeds in common the pair falls back to Welch's unpaired test.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from cnnbench.analysis.protocol import lower_is_better, problems, scored_runs
from cnnbench.analysis.significance import ALPHA, holm, paired_tests, welch

PAIRED_COLUMNS = ("best", "other", "best_lr", "other_lr", "seeds", "pairing", "test", "diff",
                  "ci_lo", "ci_hi", "p", "p_holm", "verdict")


def scores_at_best(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame,
                   scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """The runs at their group's best lr, with `score` (selection) and `test_score` (test
    metric; failed runs at the worst value) columns."""
    keys = best.attrs["keys"]
    scored = scored_runs(runs, history, best, scores)
    chosen = scored.merge(best[[*keys, "best_lr"]], on=keys)
    return chosen[chosen["lr"] == chosen["best_lr"]].reset_index(drop=True)


def problem_groups(frame: pd.DataFrame, keys: list[str]):
    """(problem as a dict, its rows) for each problem of `frame`; one problem when no key."""
    if not keys:
        yield {}, frame
        return
    for key, group in frame.groupby(keys, sort=True):
        yield dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True)), group


def _winner(rows: pd.DataFrame, metric: str) -> str:
    """The optimizer with the best selection score; ties to the first by name."""
    ordered = rows.sort_values([metric, "optimizer"],
                               ascending=[lower_is_better(metric), True], kind="stable")
    return str(ordered["optimizer"].iloc[0])


def _verdict(result_p: float, diff: float, *, lower: bool, alpha: float) -> str:
    if math.isnan(result_p):
        return "no test"
    if result_p >= alpha:
        return "not separable"
    return "better" if (diff < 0 if lower else diff > 0) else "worse"


def paired_comparisons(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame,
                       *, test: str = "t", alpha: float = ALPHA,
                       scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (problem, other optimizer): the problem's best optimizer (by the selection
    metric, as in `best`, the `best_lr` table) against it, on the test metric per seed. Columns:
    the problem keys, then PAIRED_COLUMNS; `pairing` is `paired` or `unpaired` (no seed in
    common)."""
    metric = best.attrs["metric"]
    keys = problems(best)
    lower = lower_is_better(metric)
    # every problem's mean test score per (optimizer, seed) in one groupby: a merge and a
    # groupby per problem took 0.1 s at 10 problems
    means = scores_at_best(runs, history, best, scores).groupby(
        [*keys, "optimizer", "seed"], sort=True)["test_score"].mean()
    per_seed: dict[tuple, dict[str, dict]] = {}  # problem → optimizer → seed → mean
    for (*problem, optimizer, seed), mean in means.items():
        per_seed.setdefault(tuple(problem), {}).setdefault(optimizer, {})[seed] = mean
    rows = []
    for problem, rows_best in problem_groups(best, keys):
        if len(rows_best) < 2:
            continue
        top = _winner(rows_best, metric)
        seeds_of = per_seed.get(tuple(problem.values()), {})
        lr_of = dict(zip(rows_best["optimizer"], rows_best["best_lr"], strict=True))
        a = seeds_of[top]
        others = [other for other in sorted(seeds_of) if other != top]
        common = {other: sorted(set(a) & set(seeds_of[other])) for other in others}
        paired = iter(paired_tests([([a[s] for s in seeds], [seeds_of[o][s] for s in seeds])
                                    for o, seeds in common.items() if seeds], test=test))
        found = []
        for other in others:
            b = seeds_of[other]
            if common[other]:
                result, pairing = next(paired), "paired"
            else:  # welch(b, a) is mean(a) − mean(b): the same sign as the paired difference
                result = welch(np.array(list(b.values()), float),
                               np.array(list(a.values()), float))
                pairing = "unpaired"
            found.append({**problem, "best": top, "other": other, "best_lr": lr_of[top],
                          "other_lr": lr_of[other], "seeds": result.n, "pairing": pairing,
                          "test": result.test, "diff": result.diff, "ci_lo": result.ci_lo,
                          "ci_hi": result.ci_hi, "p": result.p})
        for row, adjusted in zip(found, holm([r["p"] for r in found]), strict=True):
            row["p_holm"] = adjusted
            row["verdict"] = _verdict(adjusted, row["diff"], lower=lower, alpha=alpha)
        rows += found
    return pd.DataFrame(rows, columns=[*keys, *PAIRED_COLUMNS])
