"""The report as one self-contained HTML file (`cnnbench report DIR --format html --output F`):
the best-lr tables, LR sensitivity, learning curves, time vs accuracy, the performance profile,
the protocol and the environment. Figures are interactive plotly charts (hover a point: its
run); plotly.js, the styles and the data are inline, so the page needs no network. Series
styles come from `render.style`, the same per optimizer as in the matplotlib figures. Needs the
`[html]` extra (plotly)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench import analysis
from cnnbench.render.exports import require
from cnnbench.render.numbers import metric_scale
from cnnbench.render.problems import problem_frames
from cnnbench.render.report import Report, report_titles
from cnnbench.render.style import plotly_style, styles_by_name
from cnnbench.render.summary import timing_notes

ENVIRONMENT = ("torch_version", "cuda_version", "python_version", "device", "device_name",
               "torch_threads", "host", "git_commit")
CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0 1em; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f6f6f6; } td.key, th.key { text-align: left; } td.win { font-weight: bold;
color: #007a3d; } .warn { color: #a15c00; } .caption { color: #555; max-width: 60em; }
"""
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


def _go():
    require("plotly", "html", "--format html")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    return go, make_subplots


def _label(metric: str) -> str:
    return f"{metric} (%)" if metric.endswith("acc") else metric


def _trace_style(style: dict[str, str], *, lines: bool = True) -> dict[str, Any]:
    look = plotly_style(style)
    out: dict[str, Any] = {"marker": {"color": look["color"], "symbol": look["symbol"],
                                      "size": 8}}
    if lines:
        out["line"] = {"color": look["color"], "dash": look["dash"]}
    return out


def _grid(make_subplots, titles: list[str], columns: int = 3, **options):
    columns = min(len(titles), columns)
    rows = -(-len(titles) // columns)
    return make_subplots(rows=rows, cols=columns, subplot_titles=titles, **options), columns


def lr_sensitivity(report: Report, runs: pd.DataFrame) -> Any:
    """Mean metric over seeds against lr (log x), a line per optimizer; each run a faint point
    (hover: its run_id)."""
    go, make_subplots = _go()
    styles = styles_by_name(report.best["optimizer"].astype(str).unique().tolist())
    problems = problem_frames(report, report.curve)
    fig, columns = _grid(make_subplots, [t for t, _ in problems])
    scale, shown = metric_scale(report.metric), set()
    for i, (_, part) in enumerate(problems):
        row, col = i // columns + 1, i % columns + 1
        for optimizer, group in part.groupby("optimizer", sort=True):
            group, name = group.sort_values("lr"), str(optimizer)
            fig.add_trace(go.Scatter(
                x=group["lr"], y=group["mean"] * scale, mode="lines+markers", name=name,
                legendgroup=name, showlegend=name not in shown,
                customdata=group[["ok", "seeds"]].to_numpy(),
                hovertemplate=f"{name}<br>lr %{{x:.3g}}<br>mean %{{y:.4g}}"
                              "<br>ok %{customdata[0]}/%{customdata[1]}<extra></extra>",
                **_trace_style(styles[name])), row=row, col=col)
            shown.add(name)
        if report.at == "final" and report.metric in runs:
            each = runs.merge(part[report.keys].drop_duplicates(), on=report.keys)
            for optimizer, group in each.groupby("optimizer", sort=True):
                name = str(optimizer)
                fig.add_trace(go.Scatter(
                    x=group["lr"], y=group[report.metric] * scale, mode="markers",
                    name=f"{name} runs", legendgroup=name, showlegend=False, opacity=0.45,
                    customdata=group[["run_id", "seed", "status"]].astype(str).to_numpy(),
                    hovertemplate=f"{name} run %{{customdata[0]}}<br>lr %{{x:.3g}} seed "
                                  "%{customdata[1]}<br>%{y:.4g} (%{customdata[2]})"
                                  "<extra></extra>",
                    **_trace_style(styles[name], lines=False)), row=row, col=col)
        fig.update_xaxes(type="log", title_text="learning rate", row=row, col=col)
        fig.update_yaxes(title_text=f"{_label(report.metric)}, {report.at} epoch", row=row,
                         col=col)
    return fig


def learning_curves(report: Report, runs: pd.DataFrame, history: pd.DataFrame) -> Any:
    """Train (solid) and validation (dotted) loss and accuracy against epoch, per problem,
    each optimizer at its best lr (mean over seeds)."""
    go, make_subplots = _go()
    styles = styles_by_name(report.best["optimizer"].astype(str).unique().tolist())
    curves = analysis.learning_curves(runs, history, report.best)
    problems = problem_frames(report, curves)
    titles = [f"{t}: {kind}" for t, _ in problems for kind in ("loss", "accuracy (%)")]
    fig, _ = _grid(make_subplots, titles, columns=2)
    shown = set()
    for i, (_, part) in enumerate(problems):
        for j, kind in enumerate(("loss", "acc")):
            for (optimizer, lr), group in part.groupby(["optimizer", "lr"], sort=True):
                name = str(optimizer)
                for split, dash in (("train", None), ("val", "dot")):
                    trace = _trace_style(styles[name])
                    if dash:
                        trace["line"]["dash"] = dash
                    fig.add_trace(go.Scatter(
                        x=group["epoch"], y=group[f"{split}_{kind}"] * metric_scale(kind),
                        mode="lines+markers", name=f"{name} {split}", legendgroup=name,
                        showlegend=f"{name} {split}" not in shown,
                        hovertemplate=f"{name} (lr {lr:.3g}) {split}<br>epoch %{{x}}"
                                      f"<br>{kind} %{{y:.4g}}<extra></extra>", **trace),
                        row=i + 1, col=j + 1)
                    shown.add(f"{name} {split}")
            fig.update_xaxes(title_text="epoch", row=i + 1, col=j + 1)
            if kind == "loss":
                fig.update_yaxes(type="log", row=i + 1, col=j + 1)
    fig.update_layout(height=max(380, 330 * len(problems)))
    return fig


def time_vs_accuracy(report: Report) -> Any:
    """Each optimizer at its best lr: test metric (± std) against training seconds."""
    go, make_subplots = _go()
    styles = styles_by_name(report.best["optimizer"].astype(str).unique().tolist())
    problems = problem_frames(report, report.best)
    fig, columns = _grid(make_subplots, [t for t, _ in problems])
    test, shown = report.test, set()
    for i, (_, part) in enumerate(problems):
        row, col = i // columns + 1, i % columns + 1
        for record in part.to_dict("records"):
            name = str(record["optimizer"])
            std = record[f"{test}_std"]
            fig.add_trace(go.Scatter(
                x=[record["train_s"]], y=[record[f"{test}_mean"] * metric_scale(test)],
                error_y={"type": "data", "array": [0.0 if pd.isna(std) else
                                                   std * metric_scale(test)]},
                mode="markers", name=name, legendgroup=name, showlegend=name not in shown,
                hovertemplate=f"{name} (lr {record['best_lr']:.3g}, {record['seeds']} seed(s))"
                              f"<br>train %{{x:.3g}} s<br>{test} %{{y:.4g}}<extra></extra>",
                **_trace_style(styles[name], lines=False)), row=row, col=col)
            shown.add(name)
        fig.update_xaxes(title_text="training time (s)", row=row, col=col)
        fig.update_yaxes(title_text=_label(test), row=row, col=col)
    return fig


def performance_profile(report: Report) -> Any:
    go, _ = _go()
    styles = styles_by_name(report.best["optimizer"].astype(str).unique().tolist())
    profile = analysis.performance_profile(report.costs)
    fig = go.Figure()
    for optimizer in profile.columns:
        name = str(optimizer)
        fig.add_trace(go.Scatter(
            x=profile.index, y=profile[optimizer], mode="lines+markers", name=name,
            line_shape="hv", hovertemplate=f"{name}<br>τ %{{x:.3g}}<br>share %{{y:.2f}}"
                                           "<extra></extra>", **_trace_style(styles[name])))
    fig.update_xaxes(type="log", title_text=f"τ: factor of the best {report.cost_name}")
    fig.update_yaxes(range=[-0.02, 1.02], title_text="fraction of problems within τ")
    return fig


# ── the page ────────────────────────────────────────────────────────────────────────────────
def _table(header: list[str], rows: list[list[str]], keys: set[str],
           wins: list[bool] | None = None) -> str:
    head = "".join(f'<th class="{"key" if h in keys else ""}">{html.escape(h)}</th>'
                   for h in header)
    body = []
    for i, cells in enumerate(rows):
        tds = "".join(
            f'<td class="{"key" if h in keys else ""}'
            f'{" win" if wins and wins[i] and h == "optimizer" else ""}">{html.escape(c)}</td>'
            for h, c in zip(header, cells, strict=True))
        body.append(f"<tr>{tds}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _report_tables(report: Report) -> str:
    rows = report.rows()
    wins = report.winners().tolist()
    parts = []
    for title, columns in zip(report_titles(report), report.parts(rows), strict=True):
        parts.append(f'<p class="caption">{html.escape(title)}</p>' + _table(
            columns, [[r[c].plain for c in columns] for r in rows], set(report.keys), wins))
    if line := report.rank_line():
        parts.append(f"<p>{html.escape(line)}</p>")
    parts += [f'<p class="warn">⚠ {html.escape(w)}</p>' for w in report.warnings()]
    parts += [f'<p class="warn">{html.escape(note)}</p>' for note in timing_notes(report)]
    return "\n".join(parts)


def _environment(runs: pd.DataFrame) -> str:
    rows = [[column, ", ".join(sorted({str(v) for v in runs[column].dropna()}))]
            for column in ENVIRONMENT if column in runs and runs[column].notna().any()]
    return _table(["", "value(s)"], rows, {""})


def _protocol(report: Report, runs: pd.DataFrame) -> str:
    statuses = runs["status"].value_counts().to_dict()
    rows = [["selection metric", report.metric], ["evaluation", f"{report.at} epoch"],
            ["groups", " × ".join(report.keys)], ["near-best tolerance", f"{report.tolerance:g}"],
            ["test metric", report.test], ["runs", f"{len(runs)} ("
                                           + ", ".join(f"{n} {s}" for s, n in
                                                       sorted(statuses.items())) + ")"]]
    for column in ("suite", "dataset"):
        if column in runs:
            rows.append([column, ", ".join(sorted(runs[column].astype(str).unique()))])
    return _table(["", ""], rows, {""})


def _figure(fig: Any, div_id: str) -> str:
    fig.update_layout(template="plotly_white", margin={"t": 60, "l": 60, "r": 20, "b": 50},
                      legend={"font": {"size": 11}})
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config=PLOT_CONFIG)


def to_html(report: Report, runs: pd.DataFrame, history: pd.DataFrame, *,
            title: str | None = None) -> str:
    """The whole page as one string."""
    _go()
    from plotly.offline import get_plotlyjs

    suites = ", ".join(sorted(runs["suite"].astype(str).unique())) if "suite" in runs else ""
    title = title or f"cnnbench report{f': {suites}' if suites else ''}"
    sections = [("Best learning rate per group", _report_tables(report)),
                ("LR sensitivity", _figure(lr_sensitivity(report, runs), "lr-sensitivity"))]
    if not history.empty:
        sections.append(("Learning curves at the best lr",
                         _figure(learning_curves(report, runs, history), "learning-curves")))
    sections += [("Time vs accuracy", _figure(time_vs_accuracy(report), "time-vs-accuracy")),
                 ("Performance profile", _figure(performance_profile(report),
                                                 "performance-profile")),
                 ("Protocol", _protocol(report, runs)), ("Environment", _environment(runs))]
    body = "\n".join(f"<h2>{html.escape(name)}</h2>\n{content}" for name, content in sections)
    meta = json.dumps({"generator": "cnnbench", "runs": len(runs)})
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style>"
            f'<script type="application/json" id="cnnbench-meta">{meta}</script>'
            f"<script>{get_plotlyjs()}</script></head>\n<body><h1>{html.escape(title)}</h1>\n"
            f"{body}\n</body></html>\n")


def write_html(report: Report, runs: pd.DataFrame, history: pd.DataFrame,
               output: str | Path) -> Path:
    """Write the page to `output`; returns its path."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(to_html(report, runs, history), encoding="utf-8")
    return output
