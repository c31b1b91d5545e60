"""Welch, paired tests, Holm and asv's change rule (cnnbench.analysis.significance)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from cnnbench import analysis


def test_welch_uses_scipy_with_its_degrees_of_freedom():
    a, b = [0.90, 0.91, 0.89], [0.93, 0.95, 0.90]
    result = analysis.welch(a, b)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert result.p == pytest.approx(reference.pvalue)
    assert result.dof == pytest.approx(reference.df)
    assert 2 < result.dof < 4  # not the z = 2 of infinitely many seeds
    assert result.diff == pytest.approx(np.mean(b) - np.mean(a))
    assert result.ci_lo < result.diff < result.ci_hi


def test_welch_at_three_seeds_is_stricter_than_two_standard_errors():
    # 2.5 standard errors apart: beyond z = 2, but with ~4 dof not significant at 5%
    a = np.array([0.0, 1.0, 2.0])
    se = math.sqrt(2 * a.var(ddof=1) / 3)
    b = a + 2.5 * se
    assert analysis.welch(a, b).p > 0.05
    assert analysis.beyond_noise(a, b) is False
    assert analysis.beyond_noise(a, a + 6 * se) is True


def test_welch_without_noise_estimate():
    assert math.isnan(analysis.welch([0.9], [0.5, 0.6]).p)
    assert analysis.beyond_noise([0.9], [0.5]) is None
    assert analysis.welch([1.0, 1.0], [1.0, 1.0]).p == 1.0
    assert analysis.welch([1.0, 1.0], [2.0, 2.0]).p == 0.0


def test_paired_t_matches_scipy_and_is_sharper_than_unpaired():
    # a large seed effect shared by both sides: the paired test sees through it
    seed_effect = np.array([0.0, 0.05, -0.04, 0.08, -0.02])
    a = 0.90 + seed_effect + np.array([0.011, 0.009, 0.010, 0.012, 0.008])
    b = 0.90 + seed_effect
    result = analysis.paired_test(a, b)
    reference = stats.ttest_rel(a, b)
    assert result.p == pytest.approx(reference.pvalue)
    assert result.dof == 4 and result.n == 5
    assert result.ci_lo < result.diff < result.ci_hi
    assert result.p < 0.001 < analysis.welch(b, a).p


def test_paired_wilcoxon_and_non_finite_differences():
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [0.5, 1.2, 2.9, 3.1, 4.0, 5.5]
    assert analysis.paired_test(a, b, test="wilcoxon").p == pytest.approx(
        stats.wilcoxon(np.subtract(a, b)).pvalue)
    # a failed run scored +inf loss: t is undefined, the ranks still work
    result = analysis.paired_test([math.inf, 2.0, 3.0], [1.0, 1.5, 2.0])
    assert result.test == "wilcoxon" and not math.isnan(result.p)
    assert math.isnan(analysis.paired_test([0.9], [0.8]).p)
    assert analysis.paired_test([0.9, 0.8], [0.9, 0.8]).p == 1.0


def test_paired_tests_in_one_call_equal_each_test_alone():
    rng = np.random.default_rng(2)
    pairs = [(rng.normal(0.9, 0.02, n), rng.normal(0.89, 0.02, n)) for n in (5, 5, 3, 5, 8)]
    pairs += [([math.inf, 2.0, 3.0], [1.0, 1.5, 2.0]),  # → Wilcoxon
              ([0.9], [0.8]), ([0.9, 0.8], [0.9, 0.8]),  # one pair; no difference
              ([1.0, 2.0, 3.0], [0.5, 1.5, 2.5])]  # the same difference on every pair
    batched = analysis.paired_tests(pairs)
    assert batched == [analysis.paired_test(a, b) for a, b in pairs]
    for (a, b), result in zip(pairs[:5], batched[:5], strict=True):
        reference = stats.ttest_rel(a, b)
        ci = reference.confidence_interval(0.95)
        assert (result.p, result.ci_lo, result.ci_hi, result.dof) == pytest.approx(
            (reference.pvalue, ci.low, ci.high, reference.df), rel=1e-12)
    assert [r.test for r in batched[5:]] == ["wilcoxon", "t", "t", "t"]
    assert batched[8].p == 0.0 and batched[8].ci_lo == batched[8].ci_hi == 0.5


def test_holm_step_down():
    # the textbook example: sorted p 0.01, 0.02, 0.03, 0.04 → 0.04, 0.06, 0.06, 0.06
    adjusted = analysis.holm([0.03, 0.01, 0.04, 0.02])
    assert adjusted.tolist() == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert analysis.holm([0.5, 0.9]).tolist() == [1.0, 1.0]
    with_gap = analysis.holm([0.01, math.nan])
    assert with_gap[0] == pytest.approx(0.01) and math.isnan(with_gap[1])


def test_change_needs_both_a_factor_and_significance():
    rng = np.random.default_rng(0)
    base = 2.0 + rng.normal(0, 0.001, 5)
    flag, why = analysis.change(base, base * 1.02)  # significant, but within 5%
    assert flag is False and "within 5%" in why and "not significant" not in why
    noisy = np.array([1.0, 3.0, 1.2, 2.8, 2.0])
    flag, why = analysis.change(noisy, noisy[::-1] * 1.2)  # 20% slower, but noise
    assert flag is False and "beyond 5%" in why and "not significant" in why
    flag, why = analysis.change(base, base * 1.5)
    assert flag is True and why.startswith("beyond 5%, p=") and "not" not in why
    assert analysis.change([1.0], [2.0])[0] is None
