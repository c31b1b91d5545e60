"""The report's first screen (`cnnbench report`, and the end of `cnnbench run`): the best-lr and
sensitivity tables, the protocol line once, what the speed columns rest on, the conclusions
that hold — one line each — and the warnings in brief. The statistics tables follow only where
they have something to say: two or more seeds at a best lr. `--section all` shows everything."""

from __future__ import annotations

from typing import Protocol

import pandas as pd
from rich.console import Console

from cnnbench.analysis.timing import SPREAD_FACTOR, Timing
from cnnbench.render import confidence
from cnnbench.render.numbers import fmt_seconds


class Report(confidence.Report, Protocol):
    """What the first screen reads of a `render.report.Report` (which imports this module)."""

    keys: list[str]
    timing: Timing

    def winners(self) -> pd.Series: ...

    def warnings(self) -> list[str]: ...

CONTENDED_MARK = "*"


def timing_notes(report: Report) -> list[str]:
    """One line each: runs that shared the machine, speeds that spread beyond what an
    optimizer explains, or timings an older folder did not record."""
    timing, notes = report.timing, []
    if not timing.known and timing.runs:
        notes.append("timing unknown: these runs predate the timing columns; re-run them to "
                     "record what each got of the machine")
    if timing.contended:
        why = f" ({timing.reasons[0]})" if timing.reasons else ""
        notes.append(
            f"{CONTENDED_MARK} {len(timing.contended)} of {timing.runs} run(s) trained while the "
            f"machine was shared{why}: their times are the machine's, not the optimizer's. "
            "Re-time them alone: `cnnbench run SUITE --retime` on a quiet machine, "
            "with --workers 1")
    for spread in timing.spreads:
        notes.append(
            f"s/epoch of {spread.model} spreads {fmt_seconds(spread.low)}–"
            f"{fmt_seconds(spread.high)} ({spread.ratio:.1f}×) over {spread.runs} runs of the "
            f"same network, data, batch and precision: beyond {SPREAD_FACTOR:g}×, that is the "
            "machine's load, not the optimizers' cost")
    return notes


def allow_contended_moot(folder) -> str:
    """What `--allow-contended` says of a folder whose runs carry no timing columns."""
    return (f"timing unknown in {folder}: its runs predate the timing columns, so "
            "--allow-contended does not apply there")


def conclusion_lines(report: Report) -> list[str]:
    """One line per problem: what the paired comparisons of its best optimizer allow one to
    say (the analysis picks that optimizer: the paired table's `best`)."""
    paired, lines, said = report.confidence.paired, [], set()
    for row, winner in zip(report.best.to_dict("records"), report.winners(), strict=True):
        problem = " / ".join(str(row[k]) for k in report.problem_keys) or "this problem"
        mine = paired[_same_problem(paired, row, report.problem_keys)] \
            if not paired.empty else paired
        name, lr = str(row["optimizer"]), f"{row['best_lr']:.3g}"
        # the problem's best: the paired table's, else (a lone optimizer) the report's winner
        chosen = name == str(mine["best"].iloc[0]) if not mine.empty else winner
        if problem in said or not row["ok"] or not chosen:
            continue
        said.add(problem)
        verdicts = dict(zip(mine["other"], mine["verdict"])) if not mine.empty else {}
        ties = sorted(o for o, v in verdicts.items() if v == "not separable")
        if ties:
            lines.append(f"{' and '.join([name, *ties])} tie on {problem}: run more seeds")
        elif verdicts and set(verdicts.values()) == {"no test"}:
            lines.append(f"{name} leads on {problem} at lr {lr} (1 seed: not tested; run more "
                         "seeds to tell)")
        elif verdicts and set(verdicts.values()) <= {"better"}:
            lines.append(f"{name} is best on {problem} at lr {lr}")
        elif not verdicts:
            lines.append(f"{name} on {problem}: best lr {lr}")
        else:
            lines.append(f"{name} is selected on {problem} at lr {lr}, but does not win every "
                         "comparison on the test set (see --section all)")
    return lines


def _same_problem(paired, row: dict, keys: list[str]):
    mask = paired["best"].notna()
    for key in keys:
        if key in paired:
            mask &= paired[key].astype(str) == str(row[key])
    return mask


def brief_warnings(report: Report) -> list[str]:
    """The report's warnings, those of one kind folded into one line."""
    edge, dead, single = [], [], []
    for row in report.best.to_dict("records"):
        name = " / ".join(str(row[k]) for k in report.keys)
        if row["ok"] == 0:
            dead.append(name)
            continue
        if row["on_edge"]:
            edge.append(name)
        if row["grid_points"] == 1:
            single.append(name)
    lines = []
    if edge:
        lines.append(f"best lr on the edge of its grid for {_some(edge)}: the optimum may lie "
                     "outside it; widen the grid")
    if single:
        lines.append(f"run at one lr only: {_some(single)}: no lr was selected")
    if dead:
        lines.append(f"no run of {_some(dead)} finished ok: every lr diverged or ended in an "
                     "error, so it has no best lr")
    folded = ("on the edge of its grid", "finished ok", "at one lr only")
    return lines + [w for w in report.warnings() if not any(f in w for f in folded)]


def _some(names: list[str], shown: int = 4) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def has_statistics(report: Report) -> bool:
    """Whether some best lr has two or more seeds: only then do tests, CIs and P(best) say
    anything."""
    return not report.best.empty and int(report.best["seeds"].max()) >= 2


def print_summary(report: Report, console: Console, tables) -> None:
    """The first screen; `tables`: the two protocol tables, ready to print."""
    for table in tables:
        console.print(table)
    console.print(confidence.protocol_line(report), highlight=False, style="dim")
    for note in timing_notes(report):
        console.print(f"[yellow]{note}[/]", highlight=False)
    for line in conclusion_lines(report):
        console.print(line, highlight=False)
    for warning in brief_warnings(report):
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    if has_statistics(report):
        confidence.print_confidence(report, console, protocol=False)
