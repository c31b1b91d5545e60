"""Figures a paper can use: with 11 optimizers no two series of a figure share colour, marker and
line style, and each optimizer looks the same in every figure of a report (matplotlib and the
HTML page alike)."""

from __future__ import annotations

import itertools

import pytest
from matplotlib.colors import to_hex

import tests.helpers.results as rf
from cnnbench.render import plots
from cnnbench.render.report import Report
from cnnbench.render.style import plotly_style, series_style, styles_by_name

OPTIMIZERS = [f"opt{i:02d}" for i in range(11)]


def _report():
    rows = []
    for i, name in enumerate(OPTIMIZERS):
        for model in ("mlp", "cnn"):
            rows += rf.grid(name, {0.01: [0.5 + 0.01 * i], 0.1: [0.6 + 0.02 * i]}, model=model)
    runs = rf.runs(*rows)
    history = rf.history_for(runs)
    return Report(runs, history), runs, history


def _look(line) -> tuple[str, str, str]:
    return to_hex(line.get_color()), str(line.get_marker()), str(line.get_linestyle())


def test_the_first_64_styles_differ_in_colour_and_marker_alone():
    pairs = [(s["color"], s["marker"]) for s in map(series_style, range(64))]
    assert len(set(pairs)) == 64


@pytest.mark.parametrize("draw", ["lr_sensitivity", "learning_curves", "performance_profile"])
def test_no_two_series_of_a_figure_look_alike_and_optimizers_keep_their_look(draw):
    report, runs, history = _report()
    fig = getattr(plots, draw)(*((report, runs, history) if draw == "learning_curves"
                                 else (report,)))
    expected = styles_by_name(OPTIMIZERS)
    for ax in fig.axes:
        series = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
        assert len(series) >= len(OPTIMIZERS)
        looks = [_look(line) for line in series]
        assert len(set(looks)) == len(looks), f"{draw}: two series share a look"
        for line in series:
            name = line.get_label().split()[0].rstrip(":")
            assert to_hex(line.get_color()) == expected[name]["color"].lower()
            assert line.get_marker() == expected[name]["marker"]


def test_time_vs_accuracy_markers_are_distinct_per_optimizer():
    report, _, _ = _report()
    fig = plots.time_vs_accuracy(report)
    for ax in fig.axes:
        looks = [(to_hex(c.lines[0].get_color()), c.lines[0].get_marker())
                 for c in ax.containers]
        assert len(looks) == len(OPTIMIZERS) and len(set(looks)) == len(looks)


def test_the_html_traces_use_the_same_style_per_optimizer():
    pytest.importorskip("plotly")
    from cnnbench.render import html

    report, runs, history = _report()
    expected = {n: plotly_style(s) for n, s in styles_by_name(OPTIMIZERS).items()}
    for fig in (html.lr_sensitivity(report, runs), html.performance_profile(report)):
        lines = [t for t in fig.data if t.mode == "lines+markers"]
        for trace in lines:
            look = expected[trace.name]
            assert (trace.marker.color, trace.marker.symbol) == (look["color"], look["symbol"])
        by_axis = itertools.groupby(sorted(lines, key=lambda t: t.xaxis or "x"),
                                    key=lambda t: t.xaxis or "x")
        for _, traces in by_axis:
            looks = [(t.marker.color, t.marker.symbol, t.line.dash) for t in traces]
            assert len(set(looks)) == len(looks)
