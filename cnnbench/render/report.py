"""Render the analysis: rich tables for the terminal, and the same content as Markdown, CSV or
JSON. All numbers come from cnnbench.analysis; this module only formats them."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnbench import analysis
from cnnbench.analysis.timing import contended_at_best, timing
from cnnbench.errors import CnnbenchError
from cnnbench.render import confidence, summary
from cnnbench.render.fitting import fitted
from cnnbench.render.numbers import (
    DASH,
    fmt_bytes,
    fmt_flops,
    fmt_metric,
    fmt_seconds,
    metric_header,
    missing,
)
from cnnbench.render.sparkline import BEST_MARK, FAILED_MARK, sparklines
from cnnbench.render.text import markdown_table, records

FORMATS = ("table", "markdown", "csv", "json")


# ── the protocol's tables ───────────────────────────────────────────────────────────────────
class Report:
    """Everything one report shows, computed once from the results."""

    def __init__(self, runs: pd.DataFrame, history: pd.DataFrame | None = None, *,
                 metric: str = "val_acc", at: str = "final",
                 by: Sequence[str] = analysis.DEFAULT_BY, tolerance: float = 0.01,
                 target: tuple[str, float] | None = None, allow_contended: bool = False) -> None:
        """`allow_contended`: rank optimizers by time even where runs shared the machine."""
        self.metric, self.at, self.tolerance = metric, at, tolerance
        self.test = analysis.test_metric(metric)
        # once: with at="best" it sorts the whole history
        scores = analysis.run_scores(runs, history, metric=metric, at=at)
        self.best = analysis.best_lr(runs, history, metric=metric, at=at, by=by,
                                     tolerance=tolerance, target=target, scores=scores)
        self.keys: list[str] = self.best.attrs["keys"]
        self.curve = analysis.lr_curve(runs, history, metric=metric, at=at, by=by,
                                       scores=scores)
        self.timing = timing(runs)
        self.costs, self.cost_name = analysis.problem_costs(self.best, metric=metric)
        # a ranking by time on times the machine's load made is refused unless asked for
        self.time_refused = (self.cost_name == "seconds to target" and not allow_contended
                             and bool(self.timing.contended))
        if self.time_refused:
            self.costs, self.cost_name = analysis.problem_costs(self.best, metric=metric,
                                                                cost="error")
        self.ranks = analysis.mean_rank(self.costs)
        self.confidence = analysis.conclusions(runs, history, self.best, scores=scores)
        self.contended = contended_at_best(runs, self.best, self.keys).tolist()

    @property
    def problem_keys(self) -> list[str]:
        return [k for k in self.keys if k != "optimizer"]

    def winners(self) -> pd.Series:
        """True on the rows whose optimizer has the best selection score of its problem."""
        lower = analysis.lower_is_better(self.metric)
        score = self.best[self.metric].astype(float)
        if not self.problem_keys:
            top = score.min() if lower else score.max()
            return score == top
        tops = score.groupby([self.best[k].astype(str) for k in self.problem_keys]).transform(
            "min" if lower else "max")
        return score == tops

    def warnings(self) -> list[str]:
        out = []
        for row in self.best.to_dict("records"):
            name = " / ".join(str(row[k]) for k in self.keys)
            if row["ok"] == 0:
                out.append(f"no run of {name} finished ok: every lr diverged or failed, so it "
                           "has no best lr")
                continue
            if row["on_edge"]:
                out.append(f"the best lr of {name} ({row['best_lr']:.3g}) is on the edge of its "
                           f"grid [{row['lr_min']:.3g}, {row['lr_max']:.3g}]: the optimum may "
                           "lie outside it; widen the grid")
            if row["grid_points"] == 1:
                out.append(f"{name} was run at one lr only: no lr was selected")
            if (bound := analysis.divergence_bound(self.curve, self.keys, row)) is not None:
                out.append(f"the best lr of {name} ({row['best_lr']:.3g}) is bounded by "
                           f"divergence: every run at {bound:.3g}, the lr searched beyond it, "
                           "diverged or failed")
        return out

    def rows(self) -> list[dict[str, Text]]:
        """The report, one dict of styled cells per group, in column order: the protocol's
        choice (up to `n`), then the lr curve and the costs (from `curve` on)."""
        show_flops = self.best["flops_to_target"].notna().any()
        curves = self.sparklines()
        worst = analysis.worst_value(self.metric)
        shared_grid = bool(self.grid_label())
        rows = []
        for row, winner, contended in zip(self.best.to_dict("records"), self.winners(),
                                          self.contended, strict=True):
            win = "bold green" if winner else ""
            failed_at_best = "red" if row[f"{self.test}_mean"] == worst else ""
            cells = {k: Text(str(row[k]), style=win if k == "optimizer" else "")
                     for k in self.keys}
            cells["best lr"] = Text(f"{row['best_lr']:.3g}" + (" ⚠" if row["on_edge"] else ""),
                                    style="yellow" if row["on_edge"] else "") if row["ok"] else \
                Text("none", style="red")  # every run diverged or failed
            cells[metric_header(self.metric)] = Text(fmt_metric(row[self.metric], self.metric),
                                                     style=win)
            mean, std = row[f"{self.test}_mean"], row[f"{self.test}_std"]
            cells[f"{metric_header(self.test)} ± std"] = Text(fmt_metric(mean, self.test) + (
                "" if missing(std) else f" ± {fmt_metric(std, self.test)}"), failed_at_best)
            cells["95% CI"] = Text(DASH if missing(row["test_ci_lo"]) else (
                f"{fmt_metric(row['test_ci_lo'], self.test)}–"
                f"{fmt_metric(row['test_ci_hi'], self.test)}"))
            cells["n"] = Text(str(row["seeds"]))
            if not shared_grid:  # else the title names the one grid
                cells["lr grid"] = Text(f"{row['lr_min']:.3g} … {row['lr_max']:.3g} "
                                        f"({row['grid_points']})")
            cells["curve"] = curves[tuple(str(row[k]) for k in self.keys)]
            cells["near best"] = Text(DASH if missing(row["sensitivity_share"]) else (
                f"{row['sensitivity_decades']:.2g} dec {100 * row['sensitivity_share']:.0f}%"))
            seconds = fmt_seconds(row["s_per_epoch"])
            cells["s/epoch"] = Text(f"{seconds} {summary.CONTENDED_MARK}", style="yellow") \
                if contended else Text(seconds)
            cells["to target s"] = Text(DASH if row["target_reached"] == 0 else (
                f"{fmt_seconds(row['time_to_target_s'])} ({row['target_reached']}/"
                f"{row['seeds']})"))
            if show_flops:
                cells["FLOPs to target"] = Text(fmt_flops(row["flops_to_target"]))
            cells["peak mem"] = Text(fmt_bytes(row["peak_bytes"]))
            cells["ok/div/fail"] = Text(f"{row['ok']}/{row['diverged']}/{row['failed']}",
                                        style="red" if row["diverged"] + row["failed"] else "")
            rows.append(cells)
        return rows

    def grid_label(self) -> str:
        """The lr grid, when every group shares one; else empty."""
        grids = {tuple(g) for _, g in self.curve.groupby(self.keys)["lr"]}
        if len(grids) != 1:
            return ""
        grid = next(iter(grids))
        return f"lr {grid[0]:.3g} … {grid[-1]:.3g}, {len(grid)} points"

    def sparklines(self) -> dict[tuple[str, ...], Text]:
        """Per group, its mean score across the lr grid as bars (see `sparkline.sparklines`)."""
        return sparklines(self.curve, self.best, self.keys, metric=self.metric)

    def parts(self, rows: list[dict[str, Text]]) -> tuple[list[str], list[str]]:
        """The columns of the two tables: the choice of lr, then its curve and costs."""
        columns = list(rows[0])
        split = columns.index("lr grid" if "lr grid" in columns else "curve")
        return columns[:split], [*self.keys, *columns[split:]]

    def rank_line(self) -> str:
        if self.ranks.empty:
            return ""
        ranks = ", ".join(f"{opt} {rank:.2f}" for opt, rank in self.ranks.items())
        refused = (f" (not by seconds to target: {len(self.timing.contended)} run(s) shared "
                   "the machine; --allow-contended ranks by them anyway)"
                   if self.time_refused else "")
        return (f"mean rank over {len(self.costs)} problem(s), by {self.cost_name}{refused} "
                f"(1 = best): {ranks}")


def _problem_changes(report: Report) -> list[bool]:
    """True where a row starts a new problem, to draw a line between problems."""
    if not report.problem_keys:
        return []
    problems = list(zip(*(report.best[k].astype(str) for k in report.problem_keys)))
    return [i == 0 or problem != problems[i - 1] for i, problem in enumerate(problems)]


def _table(report: Report, title: str, columns: list[str], rows: list[dict[str, Text]],
           starts: list[bool], *, edges: bool = True) -> Table:
    """One of the report's two tables; `starts`: `_problem_changes`; without `edges`, no blank
    line above the header and below the rows (the first screen)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=edges)
    for column in columns:
        table.add_column(column, justify="left" if column in (*report.keys, "curve") else
                         "right", no_wrap=column not in report.keys)
    for i, cells in enumerate(rows):
        table.add_row(*(cells[c] for c in columns),
                      end_section=i + 1 < len(starts) and starts[i + 1])
    return table


def _titles(report: Report) -> tuple[str, str]:
    grid = report.grid_label()
    return (f"best learning rate per {' × '.join(report.keys)}: best mean {report.metric} "
            f"over seeds ({report.at} epoch); {report.test} there, mean ± std and 95% "
            "bootstrap CI",
            f"{report.metric} across the lr grid{f' ({grid})' if grid else ''}: "
            f"{BEST_MARK} best, {FAILED_MARK} all seeds failed; near best = lr within "
            f"{report.tolerance:g} of the best, in decades and share of the grid")


report_titles = _titles  # the two tables' titles, shared with the HTML page


def _brief_titles(report: Report) -> tuple[str, str]:
    """The first screen's titles: one line each (the protocol line says how lrs were chosen)."""
    grid = report.grid_label()
    return (f"best learning rate per {' × '.join(report.keys)}: {report.test} there, ± std, "
            "95% CI",
            f"{report.metric} across the lr grid{f' ({grid})' if grid else ''}; costs at the "
            "best lr")


def print_report(report: Report, console: Console, *, section: str = "summary") -> None:
    """The first screen (render/summary.py), or with `section="all"` every table, each with the
    protocol line, and every warning."""
    if report.best.empty:
        console.print("no finished runs yet")
        return
    rows = report.rows()
    choice, costs = report.parts(rows)
    brief = section != "all"
    titles, starts = (_brief_titles if brief else _titles)(report), _problem_changes(report)
    tables = [fitted(_table(report, title, columns, rows, starts, edges=not brief), console)
              for title, columns in zip(titles, (choice, costs), strict=True)]
    if brief:
        summary.print_summary(report, console, tables)
        return
    for table in tables:
        console.print(table)
        console.print(confidence.protocol_line(report), highlight=False, style="dim")
    for note in summary.timing_notes(report):
        console.print(f"[yellow]{note}[/]", highlight=False)
    if line := report.rank_line():
        console.print(line, highlight=False)
    for warning in report.warnings():
        console.print(f"[yellow]warning[/]: {warning}", highlight=False)
    confidence.print_confidence(report, console)


def render_report(runs: pd.DataFrame, console: Console, metric: str = "val_acc", *,
                  history: pd.DataFrame | None = None, at: str = "final",
                  by: Sequence[str] = analysis.DEFAULT_BY, tolerance: float = 0.01,
                  target: tuple[str, float] | None = None) -> Report | None:
    """Print the best-lr report of `runs` (the entry point `cnnbench run` uses after a suite);
    the Report, for its figures (None without runs)."""
    if runs.empty:
        console.print("no finished runs yet")
        return None
    report = Report(runs, history, metric=metric, at=at, by=by, tolerance=tolerance,
                    target=target)
    print_report(report, console)
    return report


# ── plain-text formats ──────────────────────────────────────────────────────────────────────
def to_markdown(report: Report) -> str:
    if report.best.empty:
        return "no finished runs yet\n"
    rows = report.rows()
    for cells in rows:
        if cells["optimizer"].style:  # the winner of its problem
            cells["optimizer"] = Text(f"**{cells['optimizer'].plain}**")
    parts = []
    for title, columns in zip(_titles(report), report.parts(rows), strict=True):
        parts += [f"**{title}**", "", markdown_table(
            columns, [[r[c].plain for c in columns] for r in rows]), "",
                  confidence.protocol_line(report), ""]
    if line := report.rank_line():
        parts += [line[0].upper() + line[1:] + ". Bold: the best optimizer of its problem."]
    parts += [""] + [f"> ⚠ {w}" for w in report.warnings()]
    parts += [""] + [f"> {note}" for note in summary.timing_notes(report)]
    return "\n".join(parts).rstrip() + "\n\n" + confidence.confidence_markdown(report)


def to_json(report: Report) -> str:
    doc = {"protocol": {"metric": report.metric, "at": report.at, "group_by": report.keys,
                        "tolerance": report.tolerance, "test_metric": report.test},
           "best": records(report.best), "curves": records(report.curve),
           "mean_rank": {"cost": report.cost_name, **report.ranks.to_dict()},
           "warnings": report.warnings(), "confidence": confidence.confidence_json(report),
           "timing": {"known": bool(report.timing.known), "contended": report.timing.contended,
                      "reasons": report.timing.reasons,
                      "spreads": [{"model": s.model, "low_s": s.low, "high_s": s.high,
                                   "runs": s.runs} for s in report.timing.spreads],
                      "notes": summary.timing_notes(report)}}
    return json.dumps(doc, indent=2) + "\n"


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    report.best.to_csv(buffer, index=False)
    return buffer.getvalue()


def check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise CnnbenchError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")


def write_report(report: Report, console: Console, fmt: str, *,
                 section: str | None = None) -> None:
    """Show the report in one of FORMATS; text formats go to stdout unstyled. The table is the
    first screen unless `section` is `all`; CSV holds one table: `section` (default best,
    confidence.SECTIONS); markdown and JSON hold everything."""
    check_format(fmt)
    if fmt == "table":
        print_report(report, console, section=section or "summary")
        return
    section = section or "best"
    if fmt == "csv" and section == "all":
        raise CnnbenchError("--format csv writes one table: choose --section best, paired, "
                            "budget, crossings or p-best (markdown and json hold them all)")
    csv = to_csv if section == "best" else lambda r: confidence.confidence_csv(r, section)
    text = {"markdown": to_markdown, "csv": csv, "json": to_json}[fmt](report)
    console.file.write(text)


GRAD_NORM_NOTE = ("L2 norms of the weight tensors' gradients (rank ≥ 2; layers: how many): "
                  "first = the layer nearest the input, last = the classifier, min and median "
                  "over all; epoch 0 = the first step, at initialisation")


def write_grad_norms(summary: pd.DataFrame, console: Console, fmt: str) -> None:
    """The per-run, per-epoch summary of `gradients.depth_summary` in one of FORMATS."""
    check_format(fmt)
    if fmt in ("csv", "json"):
        console.file.write(summary.to_csv(index=False) if fmt == "csv" else
                           json.dumps(records(summary), indent=2) + "\n")
        return
    header = ["run", "epoch", "step", "layers", "first", "last", "first/last", "min", "median"]
    rows = [[str(r["run"]), str(r["epoch"]), str(r["step"]), str(r["weight_layers"]),
             *(f"{r[k]:.3g}" for k in ("first", "last", "first_over_last", "min", "median"))]
            for r in summary.to_dict("records")]
    if fmt == "markdown":
        console.file.write(markdown_table(header, rows) + f"\n\n{GRAD_NORM_NOTE}.\n")
        return
    out = Table(title="Gradient norm against depth", box=box.SIMPLE_HEAD, show_edge=False,
                pad_edge=False, collapse_padding=True)
    for column in header:
        out.add_column(column, justify="left" if column == "run" else "right", no_wrap=True)
    for cells in rows:
        out.add_row(*cells)
    console.print(out)
    console.print(GRAD_NORM_NOTE, highlight=False)
