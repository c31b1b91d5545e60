"""`cnnbench report` and `cnnbench compare` in every format, on hand-built results on disk."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

import tests.helpers.results as rf
from cnnbench.cli import app
from cnnbench.render.report import Report, render_report, to_markdown

runner = CliRunner()


def _results() -> pd.DataFrame:
    rows = (rf.grid("sgd", {0.01: [0.50, 0.52, 0.51], 0.1: [0.90, 0.92, 0.91],
                            1.0: [None, None, None]})
            + rf.grid("adam", {0.01: [0.95, 0.96, 0.94], 0.1: [0.80, None, 0.82],
                               1.0: [None, None, None]})
            + rf.grid("sgd", {0.01: [0.30], 0.1: [0.60], 1.0: [0.70]}, model="cnn")
            + rf.grid("adam", {0.01: [0.40], 0.1: [0.20], 1.0: [None]}, model="cnn"))
    return rf.runs(*rows)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> str:
    return str(rf.write(tmp_path_factory.mktemp("hand"), _results()))


def _invoke(*args: str):
    result = runner.invoke(app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


def test_table_shows_best_lr_curves_winner_and_edge_warning(results):
    out = _invoke("report", results, "--section", "all")
    assert "best learning rate per model × optimizer" in out
    assert "●●" not in out and "×" in out  # failed grid points marked
    assert "0.01 ⚠" in out  # adam's best on mlp is the grid's low end
    assert "warning: the best lr of mlp / adam (0.01) is on the edge" in out
    assert "mean rank over 2 problem(s), by test error" in out
    # the first screen folds the edge warnings into one line
    brief = _invoke("report", results)
    assert "0.01 ⚠" in brief and brief.count("on the edge of its grid") == 1
    assert "best lr on the edge of its grid for cnn / adam, cnn / sgd, mlp / adam" in brief


def test_markdown_pastes_as_tables(results):
    out = _invoke("report", results, "--format", "markdown")
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("| model | optimizer | best lr"))
    assert header.count("|") == 8
    # mlp: adam wins (95% at lr 0.01) and is bold; sgd at 0.1, 91 ± 1
    assert "| mlp | **adam** | 0.01 ⚠ | 95.00 | 95.00 ± 1.00 |" in out
    assert "| mlp | sgd | 0.1 | 91.00 | 91.00 ± 1.00 |" in out
    # cnn: one seed, so no std and no CI; sgd's best is on the upper edge
    assert "| cnn | **sgd** | 1 ⚠ | 70.00 | 70.00 | — | 1 |" in out
    # curves: adam on mlp: best, a partly failed lr, then all failed
    assert "| mlp | **adam** | ●▁× |" in out
    assert "| mlp | sgd | ▁●× | 1 dec 50% |" in out  # the inner point owns 1 of 2 decades
    assert "| 5/4/0 |" in out and "| 6/3/0 |" in out  # ok/diverged/failed over the grid


def test_csv_and_json_carry_the_numbers(results):
    frame = pd.read_csv(io.StringIO(_invoke("report", results, "--format", "csv")))
    assert list(frame["best_lr"]) == [0.01, 1.0, 0.01, 0.1]  # cnn adam/sgd, mlp adam/sgd
    assert frame.loc[3, "test_acc_std"] == pytest.approx(0.01)
    doc = json.loads(_invoke("report", results, "--format", "json"))
    assert doc["protocol"]["metric"] == "val_acc" and doc["protocol"]["group_by"] == [
        "model", "optimizer"]
    assert len(doc["best"]) == 4 and len(doc["curves"]) == 12
    assert doc["mean_rank"] == {"cost": "test error", "sgd": 1.5, "adam": 1.5}
    assert any("on the edge" in w for w in doc["warnings"])


def test_metric_at_by_and_target_options(results):
    out = _invoke("report", results, "--metric", "val_loss", "--at", "best",
                  "--by", "optimizer,model", "--target", "val_acc=0.4", "--format", "csv")
    frame = pd.read_csv(io.StringIO(out))
    assert list(frame.columns[:2]) == ["optimizer", "model"]
    assert "test_loss_mean" in frame and frame["time_to_target_s"].notna().any()


def test_by_without_the_optimizer_still_ranks_optimizers(results):
    frame = pd.read_csv(io.StringIO(_invoke("report", results, "--by", "model", "--format",
                                            "csv")))
    assert list(frame.columns[:2]) == ["model", "optimizer"] and len(frame) == 4


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "test_acc"], "cannot pick the best lr by 'test_acc'"),
    (["--format", "yaml"], "unknown format 'yaml'"),
    (["--target", "val_acc"], "--target must read METRIC=VALUE"),
    (["--by", "colour"], "cannot group by colour"),
])
def test_user_errors_exit_2(results, args, message):
    result = runner.invoke(app, ["report", results, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_render_report_keeps_its_signature():
    console = Console(file=io.StringIO(), width=200)
    render_report(_results(), console)
    report = render_report(_results(), console, "val_loss")
    assert isinstance(report, Report) and report.metric == "val_loss"  # `run --plots` draws it
    assert render_report(rf.runs(), console) is None
    text = console.file.getvalue()
    assert "best learning rate per model × optimizer" in text and "no finished runs yet" in text


def test_a_group_where_every_run_failed():
    frame = rf.runs(*rf.grid("sgd", {0.1: [None, None]}))
    out = to_markdown(Report(frame))
    assert "| mlp | **sgd** | none | 0.00 | 0.00 ± 0.00 |" in out  # no best lr
    assert "no run of mlp / sgd finished ok" in out
    assert "| ×" in out


def test_compare_formats(tmp_path, results):
    faster = _results().assign(s_per_epoch=0.5, test_acc=lambda f: f["test_acc"] - 0.2)
    other = str(rf.write(tmp_path / "b", faster.assign(run_id=faster["run_id"] + "-b")))
    out = _invoke("compare", results, other, "--format", "markdown")
    # constant times (no noise): p = 0; the metric by Welch with its 4 degrees of freedom
    assert "| mlp | sgd | 128 | 0.1 | 3/3 | 1 | 0.5 | 0.50× | yes: beyond 5%, p=0 | — | 91.00 | " \
           "71.00 | -20.00 pt | yes: p=1.6e-05, 4.0 dof |" in out
    assert "| cnn | sgd | 128 | 0.1 | 1/1 |" in out and "| ? |" in out
    table = _invoke("compare", results, other)
    assert "common configuration(s)" in table and "0.50×" in table
    frame = pd.read_csv(io.StringIO(_invoke("compare", results, other, "--format", "csv")))
    assert len(frame) == 12
    doc = json.loads(_invoke("compare", results, other, "--format", "json"))
    assert doc["b"] == other and len(doc["runs"]) == 12


def test_grids_that_differ_are_named_per_row():
    frame = rf.runs(*rf.grid("sgd", {0.01: [0.5], 0.1: [0.9]}),
                    *rf.grid("adam", {1e-4: [0.9], 1e-3: [0.8], 1e-2: [0.7]}))
    out = to_markdown(Report(frame))
    assert "| mlp | **sgd** | 0.01 … 0.1 (2) | ▁● |" in out  # tied winners are both bold
    assert "| mlp | **adam** | 0.0001 … 0.01 (3) | ●" in out
