"""Render analysis tables with rich."""

from __future__ import annotations

import math

import pandas as pd
from rich.console import Console
from rich.table import Table

from cnnbench.analysis import best_lr


def _pct(value: float) -> str:
    return "—" if value is None or math.isnan(value) else f"{100 * value:.2f}%"


def best_lr_table(runs: pd.DataFrame, metric: str = "val_acc", title: str = "") -> Table:
    best = best_lr(runs, metric)
    table = Table(title=title or f"best learning rate per model and optimizer (by mean {metric})")
    for column in ("model", "optimizer", "best lr", metric, "test acc (mean ± std)", "seeds",
                   "s/epoch", "ok/diverged/failed"):
        table.add_column(column, justify="left" if column in ("model", "optimizer") else "right")
    for row in best.itertuples(index=False):
        row = row._asdict()
        lr = f"{row['best_lr']:.3g}" + (" ⚠ edge" if row["on_edge"] else "")
        value = row[metric]
        shown = _pct(value) if metric.endswith("acc") else f"{value:.4f}"
        std = "" if math.isnan(row["test_acc_std"]) else f" ± {100 * row['test_acc_std']:.2f}"
        table.add_row(row["model"], row["optimizer"], lr, shown,
                      f"{_pct(row['test_acc_mean'])}{std}", str(row["seeds"]),
                      f"{row['s_per_epoch']:.2f}", f"{row['ok']}/{row['diverged']}/{row['failed']}")
    return table


def render_report(runs: pd.DataFrame, console: Console, metric: str = "val_acc") -> None:
    if runs.empty:
        console.print("no finished runs yet")
        return
    console.print(best_lr_table(runs, metric))
    edges = best_lr(runs, metric)
    edges = edges[edges["on_edge"]]
    for row in edges.itertuples(index=False):
        console.print(f"[yellow]warning[/]: the best lr of {row.model} / {row.optimizer} "
                      f"({row.best_lr:.3g}) is on the edge of its grid: the optimum may lie "
                      "outside it; widen the grid")
