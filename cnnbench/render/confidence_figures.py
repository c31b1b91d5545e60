"""Figures of the report's conclusions with their confidence (matplotlib, through
`render.plots`): the expected best after k trials, P(best), and the paired differences with
their CIs. `write_confidence_figures` saves them beside `plots.write_figures`' own."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from cnnbench.render.numbers import metric_scale
from cnnbench.render.plots import LABELS, panels, save
from cnnbench.render.problems import problem_frames
from cnnbench.render.report import Report
from cnnbench.render.style import styles_by_name


def expected_best_figure(report: Report) -> Figure:
    """Per problem, the expected best selection score against the number of trials, a line per
    optimizer with a ± 1 std band."""
    curves = report.confidence.budget
    parts = problem_frames(report, curves)
    styles = styles_by_name(curves["optimizer"].unique().tolist())
    scale = metric_scale(report.metric)
    fig, axes = panels(len(parts))
    for ax, (name, part) in zip(axes, parts, strict=True):
        for optimizer, group in part.groupby("optimizer", sort=True):
            style = styles[optimizer]
            ax.plot(group["k"], group["expected"] * scale, label=optimizer, color=style["color"],
                    marker=style["marker"], markersize=3)
            low, high = group["expected"] - group["std"], group["expected"] + group["std"]
            if report.metric.endswith("acc"):  # an accuracy's spread stays within [0, 1]
                low, high = low.clip(0, 1), high.clip(0, 1)
            ax.fill_between(group["k"], low * scale, high * scale, color=style["color"],
                            alpha=0.15, linewidth=0)
        ax.set_xscale("log")
        ax.set_xlabel("trials k (runs drawn at random; log scale)")
        ax.set_ylabel(f"expected best {LABELS.get(report.metric, report.metric)}")
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Expected best after k trials (Dodge et al. 2019); band: ± 1 std",
                 fontsize="medium")
    return fig


def p_best_figure(report: Report) -> Figure:
    """Per problem, P(best) of each optimizer as horizontal bars."""
    table = report.confidence.p_best
    parts = problem_frames(report, table)
    styles = styles_by_name(table["optimizer"].unique().tolist())
    fig, axes = panels(len(parts), width=4.5, height=0.5 + 0.45 * table["optimizer"].nunique())
    for ax, (name, part) in zip(axes, parts, strict=True):
        part = part.sort_values("optimizer", ascending=False)
        ax.barh(part["optimizer"], part["p_best"].fillna(0),
                color=[styles[o]["color"] for o in part["optimizer"]])
        ax.set_xlim(0, 1)
        ax.set_xlabel("P(best) (bootstrap over seeds, lr re-selected)")
        ax.set_title(name)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle(f"Probability of the best {report.test}", fontsize="medium")
    return fig


def paired_figure(report: Report) -> Figure:
    """Per problem, each comparison's mean paired difference with its CI (a forest plot)."""
    table = report.confidence.paired
    parts = problem_frames(report, table)
    scale = 100.0 if report.test.endswith("acc") else 1.0
    fig, axes = panels(len(parts), width=5.0, height=0.8 + 0.5 * max(1, len(table)))
    for ax, (name, part) in zip(axes, parts, strict=True):
        labels = [f"{b} − {o}" for b, o in zip(part["best"], part["other"], strict=True)]
        y = range(len(part))
        low = (part["diff"] - part["ci_lo"]).fillna(0) * scale
        high = (part["ci_hi"] - part["diff"]).fillna(0) * scale
        ax.errorbar(part["diff"] * scale, list(y), xerr=[low, high], fmt="o", color="#0072B2",
                    capsize=3)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_yticks(list(y), labels)
        unit = " (points)" if scale == 100 else ""
        ax.set_xlabel(f"paired difference of {report.test}{unit}, {report.confidence.level:.0%}"
                      " CI")
        ax.set_title(name)
        ax.grid(True, axis="x", alpha=0.3)
    fig.suptitle("Best optimizer against each other, per seed", fontsize="medium")
    return fig


def write_confidence_figures(report: Report, folder: str | Path) -> list[Path]:
    """The confidence figures that have something to show, as PNG and SVG."""
    found = report.confidence
    paths: list[Path] = []
    if not found.budget.empty:
        paths += save(expected_best_figure(report), folder, "expected_best")
    if not found.p_best.empty and found.p_best["p_best"].notna().any():
        paths += save(p_best_figure(report), folder, "p_best")
    if not found.paired.empty and found.paired["diff"].notna().any():
        paths += save(paired_figure(report), folder, "paired_differences")
    return paths
