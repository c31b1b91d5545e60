"""The lr search's rounds, as a pure function of the suite and the results so far.

A search group is one (model, optimizer, batch size, model options) whose lr is `{search: ...}`.
Round 1 is `expand(suite, starts)`: the fixed-grid runs, and each search's start grid with the
suite's first seed; a `start: auto` group's grid is the one its recorded lr range test suggests
(`suite/starts.py`), and until that record exists round 1 waits for it (the group is pending).
Each later round is what every group asks for once the previous round has finished:

- expand: while the best lr (the report's protocol: best mean score over seeds, failed runs at
  the worst value, ties to the smaller lr) is the largest (smallest) lr run so far, one point
  beyond it at the spacing of the two outermost points, at most `expand` per side. A new point
  that diverged or failed for every seed is never the best, so the side stops there: the best is
  then bounded by divergence.
- refine: `refine` times, the geometric midpoints between the best lr and its two neighbours.
- confirm: the best lr and every lr scoring within `tolerance` of it run with `confirm` seeds
  in all (the suite's seeds, then the next integers), again until the best has them all.

`search_state` replays the rounds from round 1 against the results, so any process, at any time,
computes the same rounds; a round is finished when each of its runs has a finished result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cnnbench.errors import SuiteError
from cnnbench.suite.expand import (
    RunSpec,
    combo_lrs,
    expand,
    group_name,
    make_spec,
    matrix_combos,
    may_search,
)
from cnnbench.suite.schema import SearchSpec, Suite
from cnnbench.suite.starts import GRID_POINTS, RangeTestSpec, Start, range_test_spec

DONE = frozenset({"ok", "diverged", "error", "oom", "timeout"})  # finished: not interrupted
_SAME_LR = 1e-6  # relative: an lr proposed again (by another path) is the same point


@dataclass
class Group:
    """One search group as the replay goes: its runs so far and where its search stands."""

    name: str  # "model / optimizer" (+ batch size and model options where they vary)
    combo: dict[str, Any]  # a `matrix_combos` entry, the template for new runs
    spec: SearchSpec
    runs: list[RunSpec] = field(default_factory=list)
    phase: str = "expand"  # expand → refine → confirm → done
    expanded: dict[str, int] = field(default_factory=lambda: {"low": 0, "high": 0})
    refined: int = 0
    stop: str = ""  # why it is done: "converged", "every run diverged or failed", a budget
    edge: str = ""  # "" or a note on the best lr's side: "bounded by divergence", …
    best_lr: float | None = None
    range_test: RangeTestSpec | None = None  # a `start: auto` group's
    pending: bool = False  # its range test has no record yet: round 1 waits for it
    start: Start | None = None  # … and what the record says


@dataclass(frozen=True)
class SearchState:
    """Every round so far (the current one last) and each group's state after them."""

    rounds: list[list[RunSpec]]
    finished: bool  # no round is left to run
    groups: list[Group]

    @property
    def current(self) -> list[RunSpec]:
        """The round in progress (empty once the search is finished)."""
        return [] if self.finished else self.rounds[-1]

    @property
    def specs(self) -> list[RunSpec]:
        """Every run of every round so far."""
        return [s for r in self.rounds for s in r]

    @property
    def pending(self) -> list[RangeTestSpec]:
        """The range tests round 1 still waits for."""
        return [g.range_test for g in self.groups if g.pending and g.range_test is not None]


def has_search(suite: Suite) -> bool:
    return may_search(suite) and any(c.get("search") for c in matrix_combos(suite)[0])


def range_tests(suite: Suite, starts: Mapping[str, Start] | None = None) -> list[RangeTestSpec]:
    """The range tests of the suite's `start: auto` groups (with `starts`: those not recorded
    there yet)."""
    if not may_search(suite):
        return []
    tests = [range_test_spec(suite, c, group_name(c)) for c in matrix_combos(suite)[0]
             if c.get("search") and c["lr"] is None]
    return [t for t in tests if starts is None or t.key not in starts]


def _groups(suite: Suite, first: list[RunSpec], starts: Mapping[str, Start]) -> list[Group]:
    """The search groups, in a stable order, each with its round-1 runs."""
    groups: dict[str, Group] = {}
    by_id = {s.run_id: s for s in first}
    seed = suite.seed_list[0]
    for combo in matrix_combos(suite)[0]:
        if not combo.get("search"):
            continue
        name = group_name(combo)
        group = groups.setdefault(name, Group(name, combo, combo["search"]))
        group.runs += [by_id[make_spec(suite, combo, lr, seed).run_id]
                       for lr in combo_lrs(suite, combo, starts)]
        if combo["lr"] is None:
            _start(group, range_test_spec(suite, combo, name), starts)
    return [groups[k] for k in sorted(groups)]


def _start(group: Group, test: RangeTestSpec, starts: Mapping[str, Start]) -> None:
    """Where an auto group stands with its range test: pending, started, or stopped by it."""
    group.range_test, group.start = test, starts.get(test.key)
    group.pending = group.start is None
    if group.start is not None and not group.start.values:
        group.phase, group.stop = "done", f"range test: {group.start.message}"


def confirm_seeds(suite: Suite, count: int) -> list[int]:
    """`count` seeds: the suite's, then the next integers not among them."""
    seeds = list(suite.seed_list)
    n = 0
    while len(seeds) < count:
        if n not in seeds:
            seeds.append(n)
        n += 1
    return seeds[:count]


def _round_lr(lr: float) -> float:
    # 12 significant digits, like log grids: the same point always gets the same run_id
    return float(f"{lr:.12g}")


def _curve(group: Group, scores: dict[str, float]) -> dict[float, list[float]]:
    """lr → the scores of its seeds (every run of the group has finished)."""
    curve: dict[float, list[float]] = {}
    for run in group.runs:
        curve.setdefault(run.lr, []).append(scores[run.run_id])
    return dict(sorted(curve.items()))


def _best(curve: dict[float, list[float]], lower: bool) -> tuple[float, float]:
    """(best lr, its mean score): ties go to the smaller lr, as in the report."""
    means = {lr: sum(v) / len(v) for lr, v in curve.items()}
    best = min(means.values()) if lower else max(means.values())
    lr = min(lr for lr, m in means.items() if m == best)
    return lr, best


def _known(lr: float, lrs: list[float]) -> bool:
    return any(math.isclose(lr, x, rel_tol=_SAME_LR) for x in lrs)


def _propose(group: Group, curve: dict[float, list[float]], worst: float,
             seeds: list[int]) -> list[tuple[float, int]]:
    """The (lr, seed) points this group asks for next; advances its phase."""
    lower = group.spec.metric.endswith("loss")
    lrs = list(curve)
    best, score = _best(curve, lower)
    group.best_lr = best
    if group.phase == "expand":
        asks = []
        for side, end, inner in (("low", 0, 1), ("high", -1, -2)):
            if best != lrs[end] or len(lrs) < 2:
                continue
            if group.expanded[side] >= group.spec.expand:
                group.edge = f"on the {side} edge: expand ({group.spec.expand}) spent"
                continue
            group.expanded[side] += 1
            asks.append(_round_lr(lrs[end] ** 2 / lrs[inner]))  # one spacing beyond the end
        if asks:
            return [(lr, seeds[0]) for lr in asks]
        group.phase = "refine"
    if score == worst:  # nothing to refine or confirm: every lr diverged or failed
        group.phase, group.stop, group.best_lr = "done", "every run diverged or failed", None
        return []
    if group.phase == "refine":
        while group.refined < group.spec.refine:
            group.refined += 1
            i = lrs.index(best)
            mids = [_round_lr(math.sqrt(best * lrs[j])) for j in (i - 1, i + 1)
                    if 0 <= j < len(lrs)]
            mids = [m for m in mids if not _known(m, lrs)]
            if mids:
                return [(m, seeds[0]) for m in mids]
        group.phase = "confirm"
    if group.phase == "confirm":
        tol = group.spec.tolerance
        near = [lr for lr, v in curve.items()
                if (sum(v) / len(v) <= score + tol if lower else sum(v) / len(v) >= score - tol)]
        near.sort(key=lambda lr: (lr != best, abs(math.log(lr / best))))  # the best first
        have = {(r.lr, r.seed) for r in group.runs}
        asks = [(lr, s) for lr in near for s in seeds if (lr, s) not in have]
        if asks:
            return asks
        group.phase, group.stop = "done", "converged"
    _note_divergence(group, curve, worst)
    return []


def _note_divergence(group: Group, curve: dict[float, list[float]], worst: float) -> None:
    """Whether an end beyond the best failed for every seed: the best is bounded by it."""
    lrs = list(curve)
    if group.best_lr is None or len(lrs) < 2:
        return
    i = lrs.index(group.best_lr)
    for j in (i - 1, i + 1):
        if 0 <= j < len(lrs) and all(v == worst for v in curve[lrs[j]]) and j in (0, len(lrs) - 1):
            group.edge = "bounded by divergence"


def _budget(suite: Suite, groups: list[Group], first: list[RunSpec],
            asks: dict[str, list[tuple[float, int]]]) -> None:
    """Cut each group's asks to its `max_runs` and the suite's `max_runs`; a cut group stops."""
    total = len(first) + sum(len(g.runs) - len([r for r in g.runs if r.round == 1])
                             for g in groups)
    left = math.inf if suite.max_runs is None else suite.max_runs - total
    for group in groups:
        wanted = asks.get(group.name, [])
        own = math.inf if group.spec.max_runs is None else group.spec.max_runs - len(group.runs)
        keep = int(max(0, min(len(wanted), own, left)))
        if keep < len(wanted):
            which = "its max_runs" if own <= left else "the suite's max_runs"
            group.phase, group.stop = "done", f"stopped by {which}"
        asks[group.name] = wanted[:keep]
        left -= keep


def _scores(runs: Any, metric: str) -> dict[str, float]:
    """run_id → score: the metric of an `ok` run, else the worst value (report's protocol)."""
    from cnnbench.analysis.protocol import run_scores

    if runs is None or runs.empty:
        return {}
    finished = runs[runs["status"].isin(DONE)]
    scored = run_scores(finished, metric=metric)
    return dict(zip(finished["run_id"], scored["score"], strict=True))


def search_state(suite: Suite, runs: Any = None,
                 starts: Mapping[str, Start] | None = None) -> SearchState:
    """Replay the search against `runs` (the `runs` DataFrame of the results, or None) and the
    range test records `starts` (`suite.starts.read_starts`): every round so far, whether the
    search is finished, and each group's state."""
    from cnnbench.analysis.protocol import worst_value

    first = expand(suite, starts)
    groups = _groups(suite, first, starts or {})
    check_budget(suite, groups, first)
    metrics = {g.spec.metric for g in groups} or {"val_acc"}
    scores = {m: _scores(runs, m) for m in metrics}
    rounds = [first]
    if any(g.pending for g in groups):  # round 1 is not whole until every range test is run
        return SearchState(rounds, False, groups)
    while True:
        if any(s.run_id not in scores[next(iter(metrics))] for s in rounds[-1]):
            return SearchState(rounds, False, groups)
        asks: dict[str, list[tuple[float, int]]] = {}
        for group in groups:
            if group.phase != "done":
                seeds = confirm_seeds(suite, group.spec.confirm)
                asks[group.name] = _propose(group, _curve(group, scores[group.spec.metric]),
                                            worst_value(group.spec.metric), seeds)
        _budget(suite, groups, first, asks)
        number = len(rounds) + 1
        new = []
        for group in groups:
            made = [make_spec(suite, group.combo, lr, seed, round=number)
                    for lr, seed in asks.get(group.name, [])]
            group.runs += made
            new += made
        if not new:
            return SearchState(rounds, True, groups)
        rounds.append(sorted(new, key=lambda s: (s.model, s.optimizer, s.lr,
                                                 str(s.batch_size), s.seed)))


def check_budget(suite: Suite, groups: list[Group], first: list[RunSpec]) -> None:
    """Round 1 must fit in the budgets: they bound what the search adds, not the start grid (a
    pending range test's grid counts its `GRID_POINTS` points)."""
    planned = {g.name: GRID_POINTS if g.pending else len(g.runs) for g in groups}
    total = len(first) + sum(planned[g.name] for g in groups if g.pending)
    if suite.max_runs is not None and total > suite.max_runs:
        raise SuiteError(f"max_runs: {suite.max_runs} is below round 1's {total} run(s); "
                         "raise it or shrink the start grids")
    for group in groups:
        if group.spec.max_runs is not None and planned[group.name] > group.spec.max_runs:
            raise SuiteError(f"{group.name}: search max_runs {group.spec.max_runs} is below its "
                             f"start grid's {planned[group.name]} point(s)")

