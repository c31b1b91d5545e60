"""How many runs a suite plans, counted from the sizes of its axes before anything is expanded,
so that a typo such as `num: 3000000` is refused at once instead of expanding for minutes."""

from __future__ import annotations

import os
from typing import Any

from cnnbench.errors import SuiteError
from cnnbench.suite.schema import LogGrid, LRSearch, OptimizerEntry, Suite

MAX_RUNS = 1_000_000  # a suite past this is refused at validation
MAX_RUNS_ENV = "CNNBENCH_MAX_RUNS"  # … unless this says more


def grid_size(grid: Any) -> int:
    """The lrs of one lr grid (a search: its start grid; `start: auto`: its range test's)."""
    if grid is None or isinstance(grid, (int, float)):
        return 1
    if isinstance(grid, list):
        return len(grid)
    if isinstance(grid, LogGrid):
        return grid.num
    if isinstance(grid, LRSearch):
        search = grid.search
        return len(search.values) if search.values else (search.num if search.log else 1)
    return 1


def planned_runs(suite: Suite) -> tuple[int, tuple, str]:
    """At most how many runs the suite expands to (`exclude` not subtracted), the location of
    its largest axis, and that count spelled out."""
    matrix = suite.matrix
    optimizers = [o if isinstance(o, OptimizerEntry) else OptimizerEntry(name=o)
                  for o in matrix.optimizer]
    lrs = [grid_size(o.lr if o.lr is not None else matrix.lr) for o in optimizers]
    seeds = suite.seeds if isinstance(suite.seeds, int) else len(suite.seeds)
    batches = len(matrix.batch_size or [None])
    total = len(matrix.model) * batches * sum(lrs) * seeds
    total += sum(grid_size(e.lr if e.lr is not None else matrix.lr) for e in suite.include) * seeds
    axes = {("seeds",): seeds, ("matrix", "model"): len(matrix.model),
            ("matrix", "batch_size"): batches}
    for i, (opt, count) in enumerate(zip(optimizers, lrs, strict=True)):
        where = ("matrix", "optimizer", i, "lr") if opt.lr is not None else ("matrix", "lr")
        axes[where] = max(count, axes.get(where, 0))
    largest = max(axes, key=axes.get)
    how = (f"{len(matrix.model)} model(s) × {batches} batch size(s) × {sum(lrs):,} lr(s) over "
           f"{len(optimizers)} optimizer(s) × {seeds:,} seed(s)")
    return total, largest, how


def limit() -> int:
    try:
        return int(os.environ.get(MAX_RUNS_ENV, MAX_RUNS))
    except ValueError:
        raise SuiteError(f"{MAX_RUNS_ENV}={os.environ[MAX_RUNS_ENV]!r}: give a number of runs, "
                         f"e.g. {MAX_RUNS_ENV}=5000000") from None


def size_errors(suite: Suite) -> list[tuple[tuple, str]]:
    """(location, message) when the suite plans more runs than the limit; none otherwise."""
    total, largest, how = planned_runs(suite)
    cap = limit()
    if total <= cap:
        return []
    return [(largest, f"the suite plans {total:,} runs ({how}), more than the limit of "
                      f"{cap:,}: check the grid (a `num:` or `seeds:` typo?), or raise the "
                      f"limit with {MAX_RUNS_ENV}={total}")]
