"""What "best" means, as pure pandas: the protocol that picks each optimizer's learning rate and
the figures reported at it. No rendering here (see report.py and plots.py).

Protocol (documented in README "Reports"):
- A *group* is (model, optimizer) plus every other matrix axis that varies in the results
  (dataset, batch, schedule, epochs, model options). Within a group, runs differ by lr and seed.
- A run's *score* is its selection metric (`val_acc`, ...) at the final evaluation (`at="final"`)
  or at its best validation epoch (`at="best"`, read from the history). A run that did not end
  `ok`, or has no value, scores the worst value: 0 for an accuracy, +inf for a loss.
- The best lr has the best mean score over seeds; ties go to the smaller lr.
- At the best lr, the test metric is reported over all its seeds (worst values included) as
  mean ± std and a 95% percentile-bootstrap CI of the mean (≥ 3 seeds; seeded, deterministic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cnnbench.analysis.grid import (  # noqa: F401  (re-exported: part of the protocol)
    BOOTSTRAP_RESAMPLES,
    at_best_lr,
    bootstrap_ci,
    bootstrap_cis,
    lr_sensitivity,
    pick_best,
)
from cnnbench.errors import CnnbenchError
from cnnbench.results.schema import SUCCEEDED, Status

SELECTABLE = ("val_acc", "val_loss", "train_acc", "train_loss")
AXES = ("dataset", "model_kwargs", "batch", "schedule", "epochs")  # matrix axes besides lr/seed
DEFAULT_BY = ("model", "optimizer")


def lower_is_better(metric: str) -> bool:
    return metric.endswith("loss")


def worst_value(metric: str) -> float:
    """The value a failed run counts as: accuracies live in [0, 1]; losses have no bound."""
    return math.inf if lower_is_better(metric) else 0.0


def test_metric(metric: str) -> str:
    return "test_loss" if lower_is_better(metric) else "test_acc"


def check_metric(metric: str, at: str) -> None:
    if metric not in SELECTABLE:
        raise CnnbenchError(f"cannot pick the best lr by {metric!r}; choose one of: "
                            f"{', '.join(SELECTABLE)} (the test metric is what gets reported)")
    if at not in ("final", "best"):
        raise CnnbenchError(f"--at must be 'final' or 'best', not {at!r}")


def group_keys(runs: pd.DataFrame, by: Sequence[str] = DEFAULT_BY) -> list[str]:
    """`by` (with the optimizer, which the reports rank, added where missing), plus every other
    matrix axis that takes more than one value in `runs`."""
    by = [*by] if "optimizer" in by else [*by, "optimizer"]
    unknown = [k for k in by if k not in runs]
    if unknown:
        raise CnnbenchError(f"cannot group by {', '.join(unknown)}: not a results column; "
                            f"try model, optimizer, dataset, batch")
    extra = [a for a in AXES if a in runs and a not in by and runs[a].astype(str).nunique() > 1]
    return [*by, *extra]


def _at_best_epoch(runs: pd.DataFrame, history: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per run: the metric and test metric at the epoch where `metric` was best (first on ties)."""
    trained = history[history["epoch"] >= 1].dropna(subset=[metric])
    ordered = trained.sort_values(["run_id", metric, "epoch"],
                                  ascending=[True, lower_is_better(metric), True])
    first = ordered.drop_duplicates("run_id").set_index("run_id")
    tmetric = test_metric(metric)
    return pd.DataFrame({metric: runs["run_id"].map(first[metric]),
                         tmetric: runs["run_id"].map(first[tmetric])}, index=runs.index)


def run_scores(runs: pd.DataFrame, history: pd.DataFrame | None = None, *,
               metric: str = "val_acc", at: str = "final") -> pd.DataFrame:
    """Per run: `value`/`test` (the raw metric and test metric, NaN unless ok) and
    `score`/`test_score` (the same with failed runs and missing values set to the worst)."""
    check_metric(metric, at)
    tmetric = test_metric(metric)
    if at == "best":
        if history is None:
            raise CnnbenchError("--at best needs the history of the runs")
        source = _at_best_epoch(runs, history, metric)
    else:
        source = runs.reindex(columns=[metric, tmetric])
    ok = runs["status"].eq(Status.OK)
    value = pd.to_numeric(source[metric], errors="coerce").where(ok)
    test = pd.to_numeric(source[tmetric], errors="coerce").where(ok)
    worst = worst_value(metric)
    return pd.DataFrame({"value": value, "test": test, "score": value.fillna(worst),
                         "test_score": test.fillna(worst)}, index=runs.index)


def _status_flags(status: pd.Series) -> dict[str, pd.Series]:
    """Per run, whether it ended ok, diverged, or failed (any other end), to count per group."""
    return {"ok": status.eq(Status.OK), "diverged": status.eq(Status.DIVERGED),
            "failed": ~status.isin(list(SUCCEEDED))}


def _natural(column: pd.Series) -> pd.Series:
    """Sort key: batch sizes by value, `full` last; any other column as it is."""
    if column.name != "batch":
        return column
    return column.map(lambda b: math.inf if str(b) == "full" else float(b))


def natural_order(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """`frame` sorted by `columns`, batch sizes in numeric order (1, 32, 128, full)."""
    return frame.sort_values(list(columns), key=_natural, kind="stable").reset_index(drop=True)


def lr_curve(runs: pd.DataFrame, history: pd.DataFrame | None = None, *,
             metric: str = "val_acc", at: str = "final",
             by: Sequence[str] = DEFAULT_BY, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (group, lr): `score` (mean over seeds, failed runs at the worst value) and the
    spread of the finished runs (`mean`, `std`, `min`, `max`), with status counts. `scores`:
    `run_scores` of the same arguments, where the caller has it."""
    keys = group_keys(runs, by)
    if scores is None:
        scores = run_scores(runs, history, metric=metric, at=at)
    data = runs[[*keys, "lr"]].join(scores).assign(**_status_flags(runs["status"]))
    # one vectorised pass: a Python loop over (group, lr) took seconds at 50,000 runs
    curve = data.groupby([*keys, "lr"], sort=True).agg(
        score=("score", "mean"), mean=("value", "mean"), std=("value", "std"),
        min=("value", "min"), max=("value", "max"), seeds=("score", "size"),
        ok=("ok", "sum"), diverged=("diverged", "sum"), failed=("failed", "sum"))
    return natural_order(curve.reset_index(), [*keys, "lr"])


def time_to_target(runs: pd.DataFrame, history: pd.DataFrame | None = None,
                   target: tuple[str, float] | None = None) -> pd.DataFrame:
    """Per run (indexed like `runs`): training seconds, steps and FLOPs until the target.

    With `target=(metric, value)` it is read from the history (first evaluation that reaches
    it); otherwise from the run's recorded `time_to_target_s` (the suite's `train.target`), whose
    step is the history row recorded at that time. FLOPs need `train_flops_per_step`."""
    out = pd.DataFrame(index=runs.index, columns=["time_to_target_s", "steps_to_target"],
                       dtype=float)
    if target is not None:
        metric, value = target
        if history is None or metric not in history:
            raise CnnbenchError(f"cannot find a target on {metric!r}: not in the history")
        trained = history[history["epoch"] >= 1]
        hit = trained[trained[metric] <= value] if lower_is_better(metric) else \
            trained[trained[metric] >= value]
        first = hit.sort_values("epoch").drop_duplicates("run_id").set_index("run_id")
        out["time_to_target_s"] = runs["run_id"].map(first["elapsed_s"])
        out["steps_to_target"] = runs["run_id"].map(first["step"])
    elif "time_to_target_s" in runs:
        out["time_to_target_s"] = numeric(runs, "time_to_target_s")
        if history is not None and not history.empty:
            out["steps_to_target"] = _steps_at(history, runs["run_id"],
                                               out["time_to_target_s"])
    out["flops_to_target"] = out["steps_to_target"] * numeric(runs, "train_flops_per_step")
    return out


def _steps_at(history: pd.DataFrame, run_ids: pd.Series, seconds: pd.Series) -> np.ndarray:
    """Per run, the step of its trained history row nearest in time to `seconds` (the first
    such row on ties); NaN where `seconds` is NaN or the run has no such row. One sort of the
    history rows by (run, gap): a history scan per run took minutes at 50,000 runs."""
    secs = seconds.to_numpy(float)
    at = np.flatnonzero(~np.isnan(secs))
    ids = pd.Index(run_ids.to_numpy()[at])
    if not len(ids):
        return np.full(len(run_ids), math.nan)
    if not ids.is_unique:
        return _steps_at_merged(history, run_ids, seconds)
    trained = history.loc[history["epoch"] >= 1, ["run_id", "elapsed_s", "step"]]
    pos = ids.get_indexer(trained["run_id"])
    gap = np.abs(trained["elapsed_s"].to_numpy(float) - secs[at][pos])
    rows = np.flatnonzero((pos >= 0) & ~np.isnan(gap))
    rows = rows[np.lexsort((gap[rows], pos[rows]))]  # stable: the first row on ties
    first = rows[np.diff(pos[rows], prepend=-1) != 0]
    steps = np.full(len(run_ids), math.nan)
    steps[at[pos[first]]] = trained["step"].to_numpy(float)[first]
    return steps


def _steps_at_merged(history: pd.DataFrame, run_ids: pd.Series, seconds: pd.Series
                     ) -> np.ndarray:
    """`_steps_at` by a merge, where a run_id occurs more than once."""
    wanted = pd.DataFrame({"run_id": run_ids.to_numpy(), "seconds": seconds.to_numpy(float),
                           "at": np.arange(len(run_ids))}).dropna(subset=["seconds"])
    trained = history.loc[history["epoch"] >= 1, ["run_id", "elapsed_s", "step"]]
    near = wanted.merge(trained.assign(row=np.arange(len(trained))), on="run_id")
    near["gap"] = (near["elapsed_s"] - near["seconds"]).abs()
    first = near.dropna(subset=["gap"]).sort_values(["at", "gap", "row"]).drop_duplicates("at")
    steps = np.full(len(run_ids), math.nan)
    steps[first["at"].to_numpy()] = first["step"].to_numpy(float)
    return steps


def numeric(runs: pd.DataFrame, column: str) -> pd.Series:
    """A column as floats; all NaN where the results do not have it (e.g. older results)."""
    if column not in runs:
        return pd.Series(np.nan, index=runs.index)
    return pd.to_numeric(runs[column], errors="coerce").astype(float)


def peak_bytes(runs: pd.DataFrame) -> pd.Series:
    """Peak memory per run: CUDA allocated where measured, else process RSS, else NaN."""
    return numeric(runs, "peak_cuda_allocated_bytes").fillna(numeric(runs, "peak_rss_bytes"))


def best_lr(runs: pd.DataFrame, history: pd.DataFrame | None = None, *,
            metric: str = "val_acc", at: str = "final", by: Sequence[str] = DEFAULT_BY,
            tolerance: float = 0.01, target: tuple[str, float] | None = None,
            scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per group: its best lr and, at that lr, the selection metric, the test metric
    (mean, std, 95% CI), LR sensitivity, seconds per epoch, time/FLOPs to target, peak memory,
    and status counts over the whole group. `on_edge` flags a best lr at an end of its grid.
    `scores`: `run_scores(runs, history, metric=metric, at=at)`, where the caller has it (with
    `at="best"` it sorts the whole history; a report computes it once)."""
    check_metric(metric, at)
    if not tolerance > 0:  # also catches NaN
        raise CnnbenchError(f"--tolerance must be > 0 (in {metric} units, e.g. 0.01), "
                            f"not {tolerance:g}")
    keys = group_keys(runs, by) if not runs.empty else list(by)
    if runs.empty:
        empty = pd.DataFrame(columns=[*keys, "best_lr"])
        empty.attrs.update(keys=keys, metric=metric, at=at, tolerance=tolerance)
        return empty
    lower = lower_is_better(metric)
    reaching = time_to_target(runs, history, target)
    # only the columns read below: slicing all of a wide `runs` per group cost most of the time
    if scores is None:
        scores = run_scores(runs, history, metric=metric, at=at)
    data = runs[[*keys, "lr", "s_per_epoch", "train_s"]].join(reaching).join(
        scores).assign(peak_bytes=peak_bytes(runs))
    whole = pd.DataFrame({**_status_flags(runs["status"]), "rounds": numeric(runs, "round")},
                         index=runs.index)
    counts = whole.groupby([runs[k] for k in keys], sort=True).agg(
        runs=("ok", "size"), ok=("ok", "sum"), diverged=("diverged", "sum"),
        failed=("failed", "sum"), rounds=("rounds", "max"))
    # an lr search's rounds (suite/search.py); a fixed grid is one round
    counts["rounds"] = counts["rounds"].fillna(1).astype(int)
    rows = [{**dict(zip(keys, key, strict=True)), **figures, **whole_group}
            for key, figures, whole_group in zip(
                _group_names(counts.index), at_best_lr(data, keys, lower, tolerance),
                counts.to_dict("records"), strict=True)]
    tmetric = test_metric(metric)
    best = natural_order(pd.DataFrame(rows), keys).rename(columns={
        "score": metric, "test_mean": f"{tmetric}_mean", "test_std": f"{tmetric}_std"})
    best.attrs.update(keys=keys, metric=metric, at=at, tolerance=tolerance)
    return best


def _group_names(index: pd.Index) -> list[tuple]:
    """A groupby's group keys as tuples, also for a single key."""
    return list(index) if isinstance(index, pd.MultiIndex) else [(k,) for k in index]


def scored_runs(runs: pd.DataFrame, history: pd.DataFrame | None, best: pd.DataFrame,
                scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """`runs` with their `run_scores` columns, by the metric and epoch of `best` (a `best_lr`
    table); `scores` are those columns where the caller has them."""
    if scores is None:
        scores = run_scores(runs, history, metric=best.attrs["metric"], at=best.attrs["at"])
    return runs.join(scores)


def problems(best: pd.DataFrame) -> list[str]:
    """The columns that name a problem in a best-lr table: every group key but the optimizer."""
    return [c for c in best.attrs["keys"] if c != "optimizer"]


def problem_costs(best: pd.DataFrame, *, metric: str = "val_acc",
                  cost: str = "auto") -> tuple[pd.DataFrame, str]:
    """A (problem × optimizer) table of costs, lower is better, and the cost's name.

    `cost="time"`: seconds to target (inf where not reached by every seed); `"error"`: the test
    error (1 − accuracy) or test loss at the best lr; `"auto"`: time where any run reached a
    target, else error."""
    if cost == "auto":
        cost = "time" if best["target_reached"].gt(0).any() else "error"
    if cost == "time":
        values = best["time_to_target_s"].where(best["target_reached"] == best["seeds"], math.inf)
        name = "seconds to target"
    elif cost == "error":
        tmetric = test_metric(metric)
        values = best[f"{tmetric}_mean"]
        values, name = (values, tmetric) if lower_is_better(metric) else (1 - values,
                                                                          "test error")
    else:
        raise CnnbenchError(f"unknown cost {cost!r}; choose time, error or auto")
    keys = problems(best)
    frame = best.assign(_cost=values.astype(float))
    index = frame[keys].astype(str).agg(" / ".join, axis=1) if keys else "all"
    table = frame.assign(problem=index).pivot_table(index="problem", columns="optimizer",
                                                    values="_cost", aggfunc="first",
                                                    dropna=False)
    return table, name


def performance_profile(costs: pd.DataFrame, taus: Sequence[float] | None = None
                        ) -> pd.DataFrame:
    """AlgoPerf-style profile: for each τ (rows) and optimizer (columns), the fraction of problems
    whose cost is within a factor τ of the best optimizer's on that problem. A missing or
    infinite cost never counts; a problem no optimizer solved counts for none."""
    costs = costs.astype(float).replace(np.nan, np.inf)
    ratios = costs.div(costs.min(axis=1), axis=0)
    if taus is None:
        finite = ratios.to_numpy()[np.isfinite(ratios.to_numpy())]
        top = max(2.0, float(finite.max()) * 1.05) if finite.size else 2.0
        taus = np.geomspace(1.0, top, 50)
    taus = np.asarray(taus, float)
    shares = {opt: [(ratios[opt] <= tau).mean() for tau in taus] for opt in ratios.columns}
    return pd.DataFrame(shares, index=pd.Index(taus, name="tau"))


def mean_rank(costs: pd.DataFrame) -> pd.Series:
    """Mean rank of each optimizer over problems (1 = best; ties share the average rank;
    a missing cost ranks last)."""
    ranks = costs.astype(float).fillna(np.inf).rank(axis=1, method="average")
    return ranks.mean().sort_values().rename("mean_rank")


def learning_curves(runs: pd.DataFrame, history: pd.DataFrame, best: pd.DataFrame
                    ) -> pd.DataFrame:
    """History of the runs at each group's best lr, averaged over seeds per epoch."""
    keys = best.attrs["keys"]
    chosen = runs.merge(best[[*keys, "best_lr"]], on=keys)
    chosen = chosen[chosen["lr"] == chosen["best_lr"]]
    merged = history.drop(columns=["lr"]).merge(chosen[["run_id", *keys, "lr"]], on="run_id")
    metrics = [c for c in ("elapsed_s", "train_loss", "train_acc", "val_loss", "val_acc",
                           "test_loss", "test_acc") if c in merged]
    curves = merged.groupby([*keys, "lr", "epoch"], sort=True)[metrics].mean().reset_index()
    return natural_order(curves, [*keys, "lr", "epoch"])
