"""The report's conclusions with their stated confidence, computed together: paired comparisons,
budget curves and their crossings, P(best), and the honesty notes that go with them (what the
seed count allows one to claim, which comparisons could not be paired)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from cnnbench.analysis.budget import budget_curves, crossings
from cnnbench.analysis.paired import paired_comparisons
from cnnbench.analysis.protocol import lower_is_better, problems
from cnnbench.analysis.ranking import p_best
from cnnbench.analysis.significance import ALPHA, LEVEL


@dataclass(frozen=True)
class Confidence:
    """The tables of `confidence()`, and the notes a reader must see beside them."""

    paired: pd.DataFrame
    budget: pd.DataFrame
    crossings: pd.DataFrame
    p_best: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA
    level: float = LEVEL


def seed_notes(best: pd.DataFrame) -> list[str]:
    """What the seed count at the best lrs allows: one seed, no test; two, a weak one."""
    seeds = best["seeds"].astype(int)
    if seeds.min() <= 1:
        return ["1 seed at some best lr: no test, CI or P(best) is claimed there; run more "
                "seeds (`seeds: 3` or more) to separate optimizers"]
    if seeds.min() == 2:
        return ["2 seeds at some best lr: each paired t-test has 1 degree of freedom and the "
                "bootstrap has 3 distinct draws; treat p-values and P(best) as rough"]
    return []


def _pairing_notes(paired: pd.DataFrame, keys: list[str]) -> list[str]:
    notes = []
    for row in paired[paired["pairing"] == "unpaired"].to_dict("records"):
        where = " / ".join(str(row[k]) for k in keys)
        notes.append(f"{where + ': ' if where else ''}{row['best']} and {row['other']} share "
                     "no seed at their best lrs: no pairing possible, compared unpaired "
                     "(Welch)")
    return notes


def conclusions(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame, *,
               test: str = "t", alpha: float = ALPHA,
               scores: pd.DataFrame | None = None) -> Confidence:
    """Every confidence table of a report, from the runs and their `best_lr` table (`scores`:
    the runs' `run_scores` by its metric and epoch, where the caller has them)."""
    if best.empty:
        return Confidence(*(pd.DataFrame() for _ in range(4)), alpha=alpha)
    keys = problems(best)
    paired = paired_comparisons(runs, history, best, test=test, alpha=alpha, scores=scores)
    curves = budget_curves(runs, history, best, scores=scores)
    return Confidence(
        paired=paired, budget=curves,
        crossings=crossings(curves, keys, lower=lower_is_better(best.attrs["metric"])),
        p_best=p_best(runs, history, best, scores=scores),
        notes=[*seed_notes(best), *_pairing_notes(paired, keys)], alpha=alpha)
