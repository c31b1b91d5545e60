"""A report for any outcome of a suite: every run failed, every run diverged, one run, one seed,
a (model, optimizer) group with no finished run. Real runs of the tiny suite, then the report in
every format and the `report` command: each says what happened and none raises."""

from __future__ import annotations

import copy
import io
import json
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.execute.runner import run_suite
from cnnbench.render.report import Report, render_report, write_report
from cnnbench.results.loading import load_results
from cnnbench.suite import validate_suite
from tests.helpers.suites import TINY_SUITE

BROKEN = """
import torch.nn as nn


class Broken(nn.Module):
    \"\"\"Builds, then fails at its first forward pass: a run that ends in `error`.\"\"\"

    def __init__(self, in_channels=1, num_classes=3, image_size=8):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        raise RuntimeError("broken on purpose")
"""


def _suite(tmp_path, monkeypatch, **changes):
    (tmp_path / "broken_model.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    data = copy.deepcopy(TINY_SUITE)
    data["train"]["epochs"] = 1
    for key, value in changes.items():
        section, _, field = key.partition(".")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return validate_suite(data)


OUTCOMES = {
    "all failed": {"matrix.model": ["broken_model:Broken"]},
    "all diverged": {"matrix.lr": [1.0e12]},
    "one run": {"matrix.optimizer": ["sgd"], "matrix.lr": [0.1]},
    "one seed, one lr per optimizer": {"matrix.lr": [0.1]},
    "a group with no finished run": {"matrix.model": [{"name": "mlp", "hidden": 16},
                                                      "broken_model:Broken"]},
}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
def test_report_never_raises(outcome, tmp_path, monkeypatch):
    suite = _suite(tmp_path, monkeypatch, **OUTCOMES[outcome])
    out = tmp_path / "results"
    run_suite(suite, out)
    runs, history = load_results(out)
    assert len(runs) == len(suite.matrix.model) * len(suite.matrix.optimizer) * len(
        suite.matrix.lr)
    if outcome == "all failed":
        assert set(runs["status"]) == {"error"}
    if outcome == "all diverged":
        assert set(runs["status"]) == {"diverged"}

    console = Console(file=io.StringIO(), width=200)
    render_report(runs, console, history=history)  # what `cnnbench run` prints at its end
    printed = console.file.getvalue()
    assert "broken" not in printed or "error" in printed
    for fmt in ("table", "markdown", "csv", "json"):
        text = Console(file=io.StringIO(), width=200)
        write_report(Report(runs, history), text, fmt)
        if fmt == "json":
            json.loads(text.file.getvalue())

    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    if outcome in ("all failed", "a group with no finished run"):
        assert "no run of" in result.output and "finished ok" in result.output


@pytest.mark.skipif(sys.platform == "win32", reason="posix paths")
def test_all_failed_run_command_reports_the_failures(tmp_path, monkeypatch):
    """`cnnbench run` on a suite in which every run fails: the report of the failures and exit
    1 (runs failed), never a traceback."""
    import yaml

    suite = _suite(tmp_path, monkeypatch, **OUTCOMES["all failed"])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite.model_dump(mode="json", exclude_none=True)))
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "r")])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "error" in result.output
