"""Figures: produced, saved as PNG and SVG, and carrying the expected labels and series."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import tests.helpers.results as rf
from cnnbench.cli import app
from cnnbench.render import plots
from cnnbench.render.report import Report

ROWS = (rf.grid("sgd", {0.01: [0.5, 0.6], 0.1: [0.9, 0.8], 1.0: [None, None]})
        + rf.grid("adam", {0.01: [0.9, 0.95], 0.1: [0.7, None]})
        + rf.grid("sgd", {0.01: [0.3, 0.3], 0.1: [0.6, 0.5]}, model="cnn")
        + rf.grid("adam", {0.01: [0.4, 0.4], 0.1: [0.2, 0.3]}, model="cnn"))


def _report():
    runs = rf.runs(*ROWS)
    history = rf.history_for(runs)
    return Report(runs, history), runs, history


def _lines(ax) -> dict[str, object]:
    return {line.get_label(): line for line in ax.get_lines()}


def test_lr_sensitivity_has_a_log_panel_per_model_and_marks_failures():
    report, _, _ = _report()
    fig = plots.lr_sensitivity(report)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["cnn", "mlp"]
    mlp = axes[1]
    assert mlp.get_xscale() == "log"
    assert mlp.get_xlabel() == "learning rate (log scale)"
    assert mlp.get_ylabel() == "validation accuracy (%), final epoch"
    lines = _lines(mlp)
    assert {"adam", "sgd", "sgd: all failed"} <= set(lines)
    assert list(lines["sgd"].get_xdata()) == [0.01, 0.1, 1.0]
    assert list(lines["sgd"].get_ydata()[:2]) == pytest.approx([55.0, 85.0])
    assert list(lines["sgd: all failed"].get_xdata()) == [1.0]
    assert len(mlp.collections) == 2  # a seed band per optimizer
    assert "sgd: all failed" not in _lines(axes[0])


def test_learning_curves_per_model_vs_epoch_and_seconds():
    report, runs, history = _report()
    fig = plots.learning_curves(report, runs, history)
    assert len(fig.axes) == 8  # 2 models × (loss, acc) × (epoch, seconds)
    first = fig.axes[0]
    assert first.get_xlabel() == "epoch" and first.get_ylabel() == "loss (cross-entropy)"
    assert fig.axes[2].get_xlabel() == "training time (s)"
    assert fig.axes[1].get_ylabel() == "accuracy (%)"
    labels = set(_lines(first))
    assert labels == {"adam (lr 0.01) train", "adam (lr 0.01) val", "sgd (lr 0.1) train",
                      "sgd (lr 0.1) val"}


def test_time_vs_accuracy_and_performance_profile():
    report, _, _ = _report()
    fig = plots.time_vs_accuracy(report)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training time to the end of the run (s)"
    assert ax.get_ylabel() == "test accuracy (%)"
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"adam (lr 0.01)",
                                                                    "sgd (lr 0.1)"}
    fig = plots.performance_profile(report)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "fraction of problems within τ" and ax.get_xscale() == "log"
    lines = _lines(ax)
    assert set(lines) == {"adam", "sgd"}
    # by test error, adam is best on mlp and sgd on cnn: each within τ = 1 on half the problems
    assert lines["adam"].get_ydata()[0] == 0.5 and lines["sgd"].get_ydata()[0] == 0.5


def test_report_plots_writes_every_figure_as_png_and_svg(tmp_path):
    folder = rf.write(tmp_path / "results", rf.runs(*ROWS))
    result = CliRunner().invoke(app, ["report", str(folder), "--plots", str(tmp_path / "figs"),
                                      "--format", "csv"])
    assert result.exit_code == 0, result.output
    paths = sorted((tmp_path / "figs").iterdir())
    assert [p.name for p in paths] == sorted(
        f"{n}.{e}" for n in ("lr_sensitivity", "learning_curves", "time_vs_accuracy",
                             "performance_profile", "expected_best", "p_best",
                             "paired_differences") for e in ("png", "svg"))
    for path in paths:
        size = path.stat().st_size
        assert 10_000 < size < 2_000_000, (path, size)
        head = path.read_bytes()[:2000]
        assert head.startswith(b"\x89PNG") if path.suffix == ".png" else b"<svg" in head


def test_run_writes_figures_when_asked(tmp_path, write_suite):
    suite = write_suite(seeds=1)
    result = CliRunner().invoke(app, ["run", str(suite), "--out", str(tmp_path / "r"),
                                      "--plots", str(tmp_path / "figs")])
    assert result.exit_code == 0, result.output
    assert "best learning rate per model × optimizer" in result.output
    assert (tmp_path / "figs" / "learning_curves.png").stat().st_size > 10_000
