"""The rich tables of the suite and tool commands: the plan of a suite, where it stands, and where
each optimizer's trajectory ended."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from cnnbench.results.schema import SUITE_STATES as COLUMNS

if TYPE_CHECKING:  # the store behind it imports pandas; plan and list need none of it
    from cnnbench.results.status import SuiteStatus


def plan_rows(specs, done: dict[str, str]) -> list[dict[str, Any]]:
    """One row per run of a suite, with its state in the results folder."""
    return [{"run_id": s.run_id, "model": s.model, "optimizer": s.optimizer, "lr": s.lr,
             "batch_size": s.batch_size, "seed": s.seed, "state": done.get(s.run_id, "pending")}
            for s in specs]


def plan_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} run(s)")
    for column in ("#", "run_id", "model", "optimizer", "lr", "batch", "seed", "state"):
        table.add_column(column, justify="right" if column in ("#", "lr", "seed") else "left")
    for i, row in enumerate(rows, 1):
        table.add_row(str(i), row["run_id"], row["model"], row["optimizer"], f"{row['lr']:.3g}",
                      str(row["batch_size"]), str(row["seed"]), row["state"])
    return table


def suites_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="packaged suites (cnnbench run NAME)")
    for column in ("name", "suite", "runs", "description"):
        table.add_column(column, justify="right" if column == "runs" else "left")
    for row in rows:
        table.add_row(row["name"], row["suite"], "?" if row["runs"] is None else str(row["runs"]),
                      row["description"])
    return table


def status_rows(report: SuiteStatus) -> list[dict[str, Any]]:
    """Counts per shard and in all (pending None when the suite is not known)."""
    return [{"shard": name, **{c: counts[c] if report.known_suite or c != "pending" else None
                               for c in COLUMNS}, "total": sum(counts.values())}
            for name, counts in report.counts.items()]


def status_table(results: Path, report: SuiteStatus, record: dict[str, Any]) -> Table:
    """Counts per shard and in all; pending is '?' when the suite is not known."""
    table = Table(title=f"{results}" + (f" (Slurm job {record['job_id']})"
                                        if record.get("job_id") else ""))
    for column in ("shard", *COLUMNS, "total"):
        table.add_column(column, justify="left" if column == "shard" else "right")
    for name, counts in report.counts.items():
        if name == "all" and len(report.counts) > 1:
            table.add_section()
        cells = [str(counts[c]) if report.known_suite or c != "pending" else "?"
                 for c in COLUMNS]
        table.add_row(name, *cells, str(sum(counts.values())))
    return table


def status_lines(report: SuiteStatus) -> list[str]:
    """The lines under the status table: what is unknown, and each unfinished run."""
    lines = [] if report.known_suite else ["pending runs unknown: pass --suite SUITE"]
    for run_id, shard_name, state in report.unfinished:
        note = ", has a checkpoint" if run_id in report.resumable else ""
        lines.append(f"{state}: {run_id} (shard {shard_name}{note})")
    return lines


def trajectories_table(function: str, rows: list[dict[str, Any]]) -> Table:
    table = Table(title=f"{function}: where each optimizer ended")
    for column in ("optimizer", "lr", "steps", "x", "y", "distance to target", "f"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for r in rows:
        table.add_row(r["optimizer"], f"{r['lr']:g}", str(r["steps"]), f"{r['x']:.4g}",
                      f"{r['y']:.4g}", f"{r['distance']:.3g}", f"{r['loss']:.3g}")
    return table


def search_table(state) -> Table:
    """Per lr-search group: rounds and runs used, the best lr found, and why it stopped."""
    table = Table(title=f"lr search: {len(state.rounds)} round(s)"
                  + ("" if state.finished else f", round {len(state.rounds)} unfinished"))
    for column in ("group", "runs", "best lr", "state"):
        table.add_column(column, justify="right" if column in ("runs", "best lr") else "left")
    for group in state.groups:
        best = "none" if group.best_lr is None else f"{group.best_lr:.3g}"
        note = group.stop or group.phase
        table.add_row(group.name, str(len(group.runs)), best,
                      note + (f"; {group.edge}" if group.edge else ""))
    return table


def search_plan_lines(suite, out) -> list[str]:
    """What `plan` says under round 1 about the lr searches' later rounds, and about the range
    tests that `start: auto` groups' round 1 depends on (recorded in `out`, or not yet)."""
    from cnnbench.suite.search import has_search, search_state
    from cnnbench.suite.starts import read_starts

    if not has_search(suite):  # the search's state reads results (pandas): only where needed
        return []
    groups = search_state(suite, starts=read_starts(out)).groups
    if not groups:
        return []
    lines = [f"lr search in {len(groups)} group(s): the table is round 1 (each start grid with "
             "the first seed); later rounds depend on its results:"]
    for group in groups:
        spec = group.spec
        budget = f", at most {spec.max_runs} runs" if spec.max_runs else ""
        lines.append(f"  {group.name}: up to {spec.expand} point(s) beyond each end, "
                     f"{spec.refine} refinement(s), {spec.confirm} seed(s) at the best{budget}")
        if group.range_test is not None:
            lines.append("    " + _range_test_line(group, out))
    if suite.max_runs:
        lines.append(f"  the suite runs at most {suite.max_runs} runs in all")
    return lines


def _range_test_line(group, out) -> str:
    """Where a `start: auto` group's round 1 comes from."""
    test, start = group.range_test, group.start
    if start is None:
        settings = test.settings
        return (f"round 1 depends on its lr range test, not run yet ({int(settings['steps'])} "
                f"steps, lr {settings['lr_min']:g} to {settings['lr_max']:g}, seed {test.seed}; "
                f"`run` runs it first and records it in {test.path(out)})")
    if not start.values:
        return f"its lr range test suggests no start: {start.message} ({test.path(out)})"
    low, high = start.log or (start.values[0], start.values[-1])
    return (f"round 1 from its lr range test ({test.path(out)}): log [{low:g}, {high:g}], "
            f"{len(start.values)} points")
