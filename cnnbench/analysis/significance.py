"""Significance tests over seeds, from scipy.stats: Welch's t (unpaired, with its degrees of
freedom), the paired t and Wilcoxon signed-rank tests, Holm's step-down correction, and asv's
rule for a change (beyond a factor *and* significant). Pure functions of arrays of numbers."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

ALPHA = 0.05  # the significance level every verdict uses
LEVEL = 0.95  # the confidence level of every interval
FACTOR = 1.05  # asv's default: a time changes only when the ratio leaves [1/1.05, 1.05]


@dataclass(frozen=True)
class Significance:
    """One test: the mean difference (second − first for Welch, first − second when paired),
    its CI, the p-value, the degrees of freedom and the test's name; `n` is the number of values
    (pairs when paired, the smaller side for Welch). NaN where the test could not be made."""

    test: str
    n: int
    diff: float
    ci_lo: float
    ci_hi: float
    p: float
    dof: float


def _finite(values: Sequence[float]) -> np.ndarray:
    values = np.asarray(values, float)
    return values[np.isfinite(values)]


def _quiet(test, *args, **kwargs):
    """Run a scipy test without its warnings on near-constant samples: those cases are
    handled here (a NaN p-value reads as 'not separable')."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return test(*args, **kwargs)


def welch(a: Sequence[float], b: Sequence[float], *, level: float = LEVEL) -> Significance:
    """Welch's unequal-variance t-test of mean(b) − mean(a) over the finite values; p is NaN
    with fewer than 2 values on a side (the seed noise is unknown)."""
    a, b = _finite(a), _finite(b)
    n = min(len(a), len(b))
    diff = float(b.mean() - a.mean()) if len(a) and len(b) else math.nan
    if n < 2:
        return Significance("welch", n, diff, math.nan, math.nan, math.nan, math.nan)
    if a.var() == 0 and b.var() == 0:  # no noise at all: any difference is certain
        p = 1.0 if diff == 0 else 0.0
        return Significance("welch", n, diff, diff, diff, p, math.nan)
    result = _quiet(stats.ttest_ind, b, a, equal_var=False)
    ci = result.confidence_interval(level)
    return Significance("welch", n, diff, float(ci.low), float(ci.high), float(result.pvalue),
                      float(result.df))


def paired_test(a: Sequence[float], b: Sequence[float], *, test: str = "t",
           level: float = LEVEL) -> Significance:
    """A paired test of a − b over pairs (seeds): `test="t"` (Student's paired t, with a t CI
    of the mean difference) or `"wilcoxon"` (signed-rank; no CI). A pair with a non-finite
    difference (a failed run scored +inf) turns the t-test into Wilcoxon, which only ranks.
    With one pair no test is made (p NaN)."""
    return paired_tests([(a, b)], test=test, level=level)[0]


def paired_tests(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], *, test: str = "t",
                 level: float = LEVEL) -> list[Significance]:
    """`paired_test` of each (a, b), the t-tests of equally many pairs in one scipy call (a
    call per comparison took 0.1 s at 90 comparisons)."""
    if test not in ("t", "wilcoxon"):
        raise ValueError(f"unknown paired test {test!r}")
    results: list[Significance | None] = []
    pending: dict[int, list[tuple[int, np.ndarray]]] = {}  # pair count → (position, d)
    for a, b in pairs:
        d = np.asarray(a, float) - np.asarray(b, float)
        d = d[~np.isnan(d)]
        kind = "wilcoxon" if len(d) > 1 and not np.isfinite(d).all() else test
        result = _without_scipy(d, kind)
        if result is None and kind == "t":
            pending.setdefault(len(d), []).append((len(results), d))
        elif result is None:
            result = Significance(kind, len(d), float(d.mean()), math.nan, math.nan,
                                  float(_quiet(stats.wilcoxon, d).pvalue), math.nan)
        results.append(result)
    for n, rows in pending.items():
        found = _quiet(stats.ttest_1samp, np.vstack([d for _, d in rows]), 0.0, axis=1)
        ci = found.confidence_interval(level)
        for row, (position, d) in enumerate(rows):
            results[position] = Significance(
                "t", n, float(d.mean()), float(ci.low[row]), float(ci.high[row]),
                float(found.pvalue[row]), float(found.df[row]))
    return results


def _without_scipy(d: np.ndarray, test: str) -> Significance | None:
    """The paired `test` of the differences `d` where it needs no scipy call: one pair (no
    test), no difference at all, or the same difference on every pair; else None."""
    n = len(d)
    if n < 2:
        return Significance(test, n, float(d.mean()) if n else math.nan, math.nan, math.nan,
                            math.nan, math.nan)
    if not d.any():
        return Significance(test, n, 0.0, 0.0, 0.0, 1.0, float(n - 1))
    if test == "t" and d.var() == 0:
        diff = float(d.mean())
        return Significance(test, n, diff, diff, diff, 0.0, float(n - 1))
    return None


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error over the comparisons given); a NaN
    p-value (no test) stays NaN and does not count as a comparison."""
    p = np.asarray(pvalues, float)
    out = np.full(len(p), math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    running = 0.0
    for rank, i in enumerate(tested[np.argsort(p[tested], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))  # adjusted p never decreases
        out[i] = running
    return out


def change(a: Sequence[float], b: Sequence[float], *, factor: float = FACTOR,
           alpha: float = ALPHA) -> tuple[bool | None, str]:
    """asv's rule on positive quantities (times): B changed from A only when the ratio of means
    leaves [1/factor, factor] *and* Welch's test on the logs is significant at `alpha`. Returns
    (flag, why): None when either side has fewer than 2 finite values."""
    a, b = _finite(a), _finite(b)
    a, b = a[a > 0], b[b > 0]
    if len(a) < 2 or len(b) < 2:
        return None, "fewer than 2 seeds"
    ratio = b.mean() / a.mean()
    result = welch(np.log(a), np.log(b))
    beyond = ratio > factor or ratio < 1 / factor
    significant = result.p < alpha
    why = (f"{'beyond' if beyond else 'within'} {100 * (factor - 1):g}%, p={result.p:.2g}"
           f"{'' if significant else ' (not significant)'}")
    return bool(beyond and significant), why


def significant_diff(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA
                     ) -> tuple[bool | None, str]:
    """Whether mean(b) differs from mean(a) by Welch's test at `alpha` (an accuracy or loss has
    no natural factor, so significance alone decides). None with fewer than 2 values a side."""
    result = welch(a, b)
    if math.isnan(result.p):
        return None, "fewer than 2 seeds"
    significant = result.p < alpha
    dof = "" if math.isnan(result.dof) else f", {result.dof:.1f} dof"
    return bool(significant), (f"p={result.p:.2g}{dof}"
                               f"{'' if significant else ' (not significant)'}")
