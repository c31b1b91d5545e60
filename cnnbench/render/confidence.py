"""Render the report's conclusions with their confidence (`Report.confidence`): the paired
comparisons, the expected best after k trials and P(best), as rich tables, Markdown, CSV and
JSON; each table is followed by the protocol line. Numbers come from cnnbench.analysis
(`conclusions`); this module only formats them (figures: `render.confidence_figures`)."""

from __future__ import annotations

import io
import math
from typing import Any, Protocol

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnbench.analysis import Confidence
from cnnbench.errors import CnnbenchError
from cnnbench.render.fitting import fitted
from cnnbench.render.numbers import DASH, fmt_metric, metric_header
from cnnbench.render.numbers import missing as _missing
from cnnbench.render.text import markdown_table, records

SECTIONS = ("best", "paired", "budget", "crossings", "p-best")


class Report(Protocol):
    """What these tables read of a `render.report.Report` (which imports this module)."""

    metric: str
    at: str
    tolerance: float
    test: str
    best: pd.DataFrame
    costs: pd.DataFrame
    ranks: pd.Series
    confidence: Confidence

    @property
    def problem_keys(self) -> list[str]: ...
BUDGET_KS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)
TEXT_COLUMNS = ("best", "vs", "test", "verdict")  # left-aligned, like the names


# ── the lines that go with every table ─────────────────────────────────────────────────────
def protocol_line(report: Report) -> str:
    """The protocol in one line: selection metric, epoch, seeds, tolerance, tests."""
    seeds = report.best["seeds"].astype(int) if not report.best.empty else pd.Series([0])
    count = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}–{seeds.max()}"
    alpha = report.confidence.alpha
    return (f"protocol: lr by best mean {report.metric} ({report.at} epoch) over {count} "
            f"seed(s); tolerance {report.tolerance:g}; {report.test} reported; tests at "
            f"α = {alpha:g}, Holm per problem")


def _problem(report: Report, row: dict) -> list[str]:
    return [str(row[k]) for k in report.problem_keys]


def _diff(value: float, metric: str, unit: bool = True) -> str:
    """A difference of accuracies in points (pt), of losses as is."""
    if _missing(value):
        return DASH
    if not math.isfinite(value):
        return "∞" if value > 0 else "−∞"
    if metric.endswith("acc"):
        return f"{100 * value:+.2f}" + (" pt" if unit else "")
    return f"{value:+.4f}"


def _p(value: float) -> str:
    return DASH if _missing(value) else f"{value:.2g}"


# ── the three tables, as header + rows of plain strings ────────────────────────────────────
def paired_table(report: Report) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of the paired comparisons."""
    test = report.test
    header = [*report.problem_keys, "best", "vs", "lr best / vs", "seeds", "best − vs",
              f"{report.confidence.level:.0%} CI", "test", "p", "p Holm", "verdict"]
    rows = []
    for row in report.confidence.paired.to_dict("records"):
        verdict = {"better": f"{row['best']} better", "worse": f"{row['other']} better",
                   "no test": f"no test ({row['seeds']} seed)"}.get(row["verdict"],
                                                                     row["verdict"])
        ci = DASH if _missing(row["ci_lo"]) else (f"{_diff(row['ci_lo'], test, False)} … "
                                                  f"{_diff(row['ci_hi'], test, False)}")
        rows.append([*_problem(report, row), row["best"], row["other"],
                     f"{row['best_lr']:.3g} / {row['other_lr']:.3g}", str(row["seeds"]),
                     _diff(row["diff"], test), ci,
                     DASH if row["verdict"] == "no test" else
                     row["test"] + ("" if row["pairing"] == "paired" else " (unpaired)"),
                     _p(row["p"]), _p(row["p_holm"]), verdict])
    title = (f"paired differences per seed: each problem's best optimizer against every other, "
             f"each at its own best lr, on {test} (failed runs at the worst value)")
    return title, header, rows


def budget_table(report: Report) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of the expected best after k trials (a few k, and the last)."""
    curves = report.confidence.budget
    top = int(curves["trials"].max()) if not curves.empty else 0
    ks = [k for k in BUDGET_KS if k < top] + ([top] if top else [])
    header = [*report.problem_keys, "optimizer", "trials", *(f"k={k}" for k in ks)]
    keys = [*report.problem_keys, "optimizer"]
    # one pass over the rows shown (and each curve's first), not pandas calls per curve (0.06 s
    # at 100 curves)
    shown = curves[curves["k"].isin(ks) | ~curves.duplicated(keys)] if top else pd.DataFrame(
        columns=[*keys, "trials", "k", "expected"])
    group = shown.groupby(keys, sort=True).ngroup().tolist()
    column = {c: shown[c].tolist() for c in (*keys, "trials", "k", "expected")}
    firsts: dict[int, int] = {}  # a curve's first row, for its names and trials
    expected: dict[int, dict] = {}
    for i, g in enumerate(group):
        if g >= 0:  # -1: a missing key, which groupby leaves out
            firsts.setdefault(g, i)
            expected.setdefault(g, {})[column["k"][i]] = column["expected"][i]
    rows = []
    for g in sorted(firsts):
        first, at = {c: column[c][firsts[g]] for c in column}, expected[g]
        rows.append([*_problem(report, first), str(first["optimizer"]), str(first["trials"]),
                     *(fmt_metric(at[k], report.metric) if k in at else DASH for k in ks)])
    title = (f"expected best {metric_header(report.metric)} after k trials (Dodge et al. 2019: "
             "k runs drawn at random from each optimizer's lr × seed runs)")
    return title, header, rows


def crossing_lines(report: Report) -> list[str]:
    """Where two optimizers' expected-best curves cross, in words."""
    lines = []
    for row in report.confidence.crossings.to_dict("records"):
        where = " / ".join(_problem(report, row))
        k = row["k"]
        lines.append(f"{where + ': ' if where else ''}with fewer than {k} trials "
                     f"{row['before']} beats {row['after']}; with {k} or more, {row['after']}")
    return lines


def p_best_table(report: Report) -> tuple[str, list[str], list[list[str]]]:
    """Title, header and rows of P(best), with the mean ranks beside it."""
    header = [*report.problem_keys, "optimizer", "P(best)", "mean rank (bootstrap)",
              f"mean rank ({len(report.costs)} problem(s))"]
    table = report.confidence.p_best
    rows = []
    if not table.empty:
        table = table.sort_values([*report.problem_keys, "p_best", "optimizer"],
                                  ascending=[*(True for _ in report.problem_keys), False, True])
    for row in table.to_dict("records"):
        rank = report.ranks.get(row["optimizer"], math.nan)
        rows.append([*_problem(report, row), str(row["optimizer"]),
                     DASH if _missing(row["p_best"]) else f"{row['p_best']:.2f}",
                     DASH if _missing(row["bootstrap_rank"]) else f"{row['bootstrap_rank']:.2f}",
                     DASH if _missing(rank) else f"{rank:.2f}"])
    title = (f"P(best): share of bootstrap replicates over seeds in which each optimizer has the "
             f"best {report.test}, every replicate re-selecting each optimizer's lr")
    return title, header, rows


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    return [t for t in (paired_table(report), budget_table(report), p_best_table(report))
            if t[2]]


# ── output ─────────────────────────────────────────────────────────────────────────────────
def print_confidence(report: Report, console: Console, *, protocol: bool = True) -> None:
    """The confidence tables, each followed by the protocol line (unless `protocol` is False:
    the first screen prints it once), then crossings and notes."""
    line = protocol_line(report)
    for title, header, rows in _tables(report):
        table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        for column in header:
            table.add_column(column, justify="left" if column in (
                *report.problem_keys, *TEXT_COLUMNS, "optimizer") else "right")
        for cells in rows:
            table.add_row(*map(Text, cells))  # plain text: a name may hold "[", not markup
        console.print(fitted(table, console))
        if protocol:
            console.print(line, highlight=False, style="dim")
        if title.startswith("expected best"):
            # one print: a print per line took 0.05 s at 430 crossings
            console.print("\n".join(crossing_lines(report))
                          or "the expected-best curves do not cross", highlight=False)
    for note in report.confidence.notes:
        console.print(f"[yellow]note[/]: {note}", highlight=False)


def confidence_markdown(report: Report) -> str:
    parts = []
    for title, header, rows in _tables(report):
        parts += [f"**{title}**", "", markdown_table(header, rows, left=TEXT_COLUMNS), "",
                  protocol_line(report), ""]
        if title.startswith("expected best"):
            parts += [f"- {line}" for line in crossing_lines(report)
                      or ["the expected-best curves do not cross"]] + [""]
    parts += [f"> note: {note}" for note in report.confidence.notes]
    return "\n".join(parts).rstrip() + "\n"


def confidence_json(report: Report) -> dict[str, Any]:
    found = report.confidence
    return {"paired": records(found.paired), "expected_best": records(found.budget),
            "crossings": records(found.crossings), "p_best": records(found.p_best),
            "notes": found.notes, "alpha": found.alpha, "level": found.level,
            "protocol_line": protocol_line(report)}


def confidence_csv(report: Report, section: str) -> str:
    """One section as CSV: `paired`, `budget` (every k), `crossings` or `p-best`."""
    if section not in SECTIONS:
        raise CnnbenchError(f"unknown section {section!r}; choose one of: {', '.join(SECTIONS)}")
    frame = {"paired": report.confidence.paired, "budget": report.confidence.budget,
             "crossings": report.confidence.crossings, "p-best": report.confidence.p_best,
             "best": report.best}[section]
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue()
