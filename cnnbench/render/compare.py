"""`cnnbench compare`: two result sets side by side, as a rich table, Markdown, CSV or JSON. The
numbers and flags come from `cnnbench.analysis.compare`; this module only formats them."""

from __future__ import annotations

import json

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from cnnbench.render.numbers import DASH, fmt_metric, fmt_seconds, missing
from cnnbench.render.report import check_format
from cnnbench.render.text import markdown_table, records


def _flag(value: bool | None, why: str) -> str:
    """yes / no with why (which of factor and significance held); ? without a noise estimate."""
    return "?" if value is None else ("yes: " if value else "no: ") + why


def compare_rows(table: pd.DataFrame, metric: str = "test_acc") -> list[dict[str, str]]:
    rows = []
    for row in table.to_dict("records"):
        cells = {k: str(row[k]) for k in ("model", "optimizer") if k in row}
        if "batch" in row:
            cells["batch"] = str(row["batch"])
        cells["lr"] = f"{row['lr']:.3g}"
        cells["seeds"] = f"{row['both_ok']}/{row['seeds']}"
        cells["s/epoch A"] = fmt_seconds(row["s_per_epoch_a"])
        cells["s/epoch B"] = fmt_seconds(row["s_per_epoch_b"])
        cells["time B/A"] = DASH if missing(row["time_ratio"]) else f"{row['time_ratio']:.2f}×"
        cells["time changed"] = _flag(row["time_flag"], row["time_why"])
        cells["memory B/A"] = DASH if missing(row["memory_ratio"]) else \
            f"{row['memory_ratio']:.2f}×"
        cells[f"{metric} A"] = fmt_metric(row[f"{metric}_a"], metric)
        cells[f"{metric} B"] = fmt_metric(row[f"{metric}_b"], metric)
        diff = row[f"{metric}_diff"]
        cells["B − A"] = DASH if missing(diff) else (
            f"{100 * diff:+.2f} pt" if metric.endswith("acc") else f"{diff:+.4f}")
        cells[f"{metric} changed"] = _flag(row[f"{metric}_flag"], row[f"{metric}_why"])
        rows.append(cells)
    return rows


COMPARE_NOTE = ("B/A: ratio of means over the seeds ok on both sides; a time changed only when "
                "the ratio is beyond the factor (asv's rule) and Welch's t-test on log seconds "
                "gives p < 0.05, the metric when Welch's test does (scipy, with its degrees of "
                "freedom); ? = fewer than 2 seeds, noise unknown")


def write_compare(table: pd.DataFrame, console: Console, fmt: str, *,
                  metric: str = "test_acc", names: tuple[str, str] = ("A", "B")) -> None:
    check_format(fmt)
    if fmt == "csv":
        console.file.write(table.to_csv(index=False))
        return
    if fmt == "json":
        console.file.write(json.dumps({"a": names[0], "b": names[1],
                                       "runs": records(table)}, indent=2) + "\n")
        return
    if table.empty:
        console.print("no common runs: nothing to compare (runs match by run_id, or by model, "
                      "optimizer, lr and seed)")
        return
    rows = compare_rows(table, metric)
    legend = f"A = {names[0]}, B = {names[1]}"
    if fmt == "markdown":
        console.file.write(f"{legend}\n\n" + markdown_table(list(rows[0]), [list(r.values())
                                                                           for r in rows])
                           + f"\n\n{COMPARE_NOTE}.\n")
        return
    out = Table(title=f"{legend}: {len(table)} common configuration(s)", box=box.SIMPLE_HEAD)
    for column in rows[0]:
        out.add_column(column, justify="left" if column in ("model", "optimizer") else "right")
    for cells in rows:
        out.add_row(*(Text(v, style="bold yellow" if v.startswith("yes") else "")
                      for v in cells.values()))
    console.print(out)
    console.print(COMPARE_NOTE, highlight=False)


# ── gradient norms against depth ────────────────────────────────────────────────────────────
