"""Figures of a report (matplotlib, Agg backend): each function returns a Figure; `write_figures`
saves them all as PNG and SVG. Colours, markers and line styles come from
`render.style`, the same for an optimizer in every figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cnnbench import analysis  # noqa: E402
from cnnbench.render.numbers import metric_scale  # noqa: E402
from cnnbench.render.report import Report  # noqa: E402
from cnnbench.render.style import styles_by_name  # noqa: E402

LABELS = {"val_acc": "validation accuracy (%)", "val_loss": "validation loss",
          "train_acc": "training accuracy (%)", "train_loss": "training loss",
          "test_acc": "test accuracy (%)", "test_loss": "test loss"}


def panels(count: int, *, width: float = 5.0, height: float = 3.8) -> tuple[Figure, list]:
    """A figure of `count` panels, at most 3 a row; the unused ones hidden."""
    columns = min(count, 3)
    rows = -(-count // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows),
                             squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for extra in flat[count:]:
        extra.set_visible(False)
    return fig, flat[:count]


def optimizer_styles(report: Report) -> dict[str, dict[str, str]]:
    """A style per optimizer of the report, the same in each of its figures (a figure showing
    some of them keeps their colours)."""
    return styles_by_name(report.best["optimizer"].astype(str).unique().tolist())


def _problem_label(report: Report, row: dict) -> str:
    return " / ".join(str(row[k]) for k in report.problem_keys) or "all runs"


def lr_sensitivity(report: Report) -> Figure:
    """Metric vs lr (log x), a line per optimizer through the mean over seeds of the runs that
    finished, a band from their min to max, × where every seed at that lr failed."""
    curve = report.curve
    problems = curve[report.problem_keys].drop_duplicates().to_dict("records") if \
        report.problem_keys else [{}]
    styles = optimizer_styles(report)
    fig, axes = panels(len(problems))
    scale = metric_scale(report.metric)
    for ax, problem in zip(axes, problems, strict=True):
        part = curve.merge(pd.DataFrame([problem]), on=list(problem)) if problem else curve
        part_best = report.best.merge(pd.DataFrame([problem]), on=list(problem)) if problem \
            else report.best
        for optimizer, group in part.groupby("optimizer", sort=True):
            group = group.sort_values("lr")
            style = styles[optimizer]
            ax.plot(group["lr"], group["mean"] * scale, label=optimizer, color=style["color"],
                    marker=style["marker"], linestyle=style["linestyle"], markersize=4)
            ax.fill_between(group["lr"], group["min"] * scale, group["max"] * scale,
                            color=style["color"], alpha=0.2, linewidth=0)
            best = part_best.loc[part_best["optimizer"] == optimizer, "best_lr"]
            chosen = group[group["lr"].isin(best)]
            ax.plot(chosen["lr"], chosen["mean"] * scale, linestyle="none", marker="o",
                    markersize=12, markerfacecolor="none", markeredgecolor=style["color"],
                    markeredgewidth=1.5)
            failed = group[group["ok"] == 0]
            if len(failed):
                # at the bottom edge: a failed run has no value to place it at
                ax.plot(failed["lr"], np.zeros(len(failed)), linestyle="none", marker="x",
                        markersize=8, color=style["color"], clip_on=False,
                        transform=ax.get_xaxis_transform(), label=f"{optimizer}: all failed")
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel(f"{LABELS.get(report.metric, report.metric)}, {report.at} epoch")
        ax.set_title(_problem_label(report, problem))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"LR sensitivity: mean {report.metric} over seeds\n"
                 "band: min–max over seeds; ○: best lr; ×: every seed diverged or failed",
                 fontsize="medium")
    return fig


def learning_curves(report: Report, runs: pd.DataFrame, history: pd.DataFrame) -> Figure:
    """Per problem (rows): loss (log scale) and accuracy vs epoch and vs training seconds, a line
    per optimizer at its best lr (mean over seeds; solid = train, dashed = validation)."""
    curves = analysis.learning_curves(runs, history, report.best)
    problems = curves[report.problem_keys].drop_duplicates().to_dict("records") if \
        report.problem_keys else [{}]
    styles = optimizer_styles(report)
    fig, grid = plt.subplots(len(problems), 4, figsize=(18, 3.6 * len(problems)),
                             squeeze=False, layout="constrained")
    panels = [("epoch", "loss", "epoch", "loss (cross-entropy)"),
              ("epoch", "acc", "epoch", "accuracy (%)"),
              ("elapsed_s", "loss", "training time (s)", "loss (cross-entropy)"),
              ("elapsed_s", "acc", "training time (s)", "accuracy (%)")]
    for axes, problem in zip(grid, problems, strict=True):
        part = curves.merge(pd.DataFrame([problem]), on=list(problem)) if problem else curves
        for ax, (x, kind, xlabel, ylabel) in zip(axes, panels, strict=True):
            scale = metric_scale(kind)
            for (optimizer, lr), group in part.groupby(["optimizer", "lr"], sort=True):
                style = styles[optimizer]
                for split, line in (("train", "-"), ("val", "--")):
                    ax.plot(group[x], group[f"{split}_{kind}"] * scale, linestyle=line,
                            color=style["color"], marker=style["marker"], markersize=3,
                            label=f"{optimizer} (lr {lr:.3g}) {split}")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if kind == "loss":
                ax.set_yscale("log")  # an early spike must not flatten the rest of the curve
            ax.set_title(f"{_problem_label(report, problem)}: {kind} vs {xlabel.split(' (')[0]}")
            ax.grid(True, alpha=0.3)
            if x == "epoch":
                ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0].legend(fontsize="x-small")
    fig.suptitle("Learning curves at each optimizer's best lr (mean over seeds; "
                 "solid: train, dashed: validation)")
    return fig


def time_vs_accuracy(report: Report) -> Figure:
    """Each optimizer at its best lr: test metric (mean ± std over seeds) against training
    seconds, one panel per problem."""
    best = report.best
    problems = best[report.problem_keys].drop_duplicates().to_dict("records") if \
        report.problem_keys else [{}]
    styles = optimizer_styles(report)
    fig, axes = panels(len(problems), width=4.5)
    test = report.test
    scale = metric_scale(test)
    for ax, problem in zip(axes, problems, strict=True):
        part = best.merge(pd.DataFrame([problem]), on=list(problem)) if problem else best
        for row in part.to_dict("records"):
            style = styles[row["optimizer"]]
            ax.errorbar(row["train_s"], row[f"{test}_mean"] * scale,
                        yerr=np.nan_to_num(row[f"{test}_std"]) * scale, color=style["color"],
                        marker=style["marker"], capsize=3, linestyle="none",
                        label=f"{row['optimizer']} (lr {row['best_lr']:.3g})")
        ax.set_xlabel("training time to the end of the run (s)")
        ax.set_ylabel(LABELS.get(test, test))
        ax.set_title(_problem_label(report, problem))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(f"Time vs {test}: each optimizer at its best lr\n(mean ± std over seeds)",
                 fontsize="medium")
    return fig


def performance_profile(report: Report) -> Figure:
    """AlgoPerf-style performance profile over the problems of the report."""
    profile = analysis.performance_profile(report.costs)
    styles = optimizer_styles(report)
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for optimizer in profile.columns:
        style = styles[optimizer]
        ax.step(profile.index, profile[optimizer], where="post", label=optimizer,
                color=style["color"], linestyle=style["linestyle"], marker=style["marker"],
                markersize=4)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"τ: factor of the best {report.cost_name} on a problem (log scale)")
    ax.set_ylabel("fraction of problems within τ")
    ax.set_title(f"Performance profile over {len(report.costs)} problem(s), "
                 f"by {report.cost_name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def save(fig: Figure, folder: str | Path, name: str) -> list[Path]:
    """Write `fig` as <name>.png (150 dpi) and <name>.svg, close it, return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def write_figures(report: Report, runs: pd.DataFrame, history: pd.DataFrame,
                  folder: str | Path) -> list[Path]:
    """All figures of a report into `folder`; the learning curves need a history."""
    paths = save(lr_sensitivity(report), folder, "lr_sensitivity")
    if not history.empty:
        paths += save(learning_curves(report, runs, history), folder, "learning_curves")
    paths += save(time_vs_accuracy(report), folder, "time_vs_accuracy")
    paths += save(performance_profile(report), folder, "performance_profile")
    return paths


def grad_norm_depth(profile: pd.DataFrame, epochs: list[int]) -> Figure:
    """Gradient norm of each weight tensor against its depth (log y), a line per run, a panel
    per epoch (epoch 0: the first step's gradient, at initialisation)."""
    fig, axes = panels(len(epochs), width=6.0)
    styles = styles_by_name(profile["label"].unique().tolist())
    for ax, epoch in zip(axes, epochs, strict=True):
        part = profile[profile["epoch"] == epoch]
        for label, group in part.groupby("label", sort=True):
            ax.plot(group["depth"], group["grad_norm"], color=styles[label]["color"],
                    marker=styles[label]["marker"], markersize=3, label=label)
        step = int(part["step"].max()) if not part.empty else 0
        ax.set_title("at initialisation (step 1)" if epoch == 0 else
                     f"after epoch {epoch} (step {step})")
        ax.set_xlabel("depth (weight tensor, input → output)")
        ax.set_ylabel("gradient L2 norm")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize="small")
    fig.suptitle("Gradient norm per layer")
    return fig
