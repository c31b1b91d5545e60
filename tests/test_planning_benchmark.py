"""benchmarks/planning.py at a tiny size: its suites validate and its table comes out (speed is
never asserted here; the benchmark is run by hand)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import planning  # noqa: E402


def test_the_log_grid_suite_plans_n_runs():
    from cnnbench.suite import expand, validate_suite

    assert len(expand(validate_suite(planning.log_grid_suite(50)))) == 50


@pytest.mark.subprocess
def test_a_tiny_run_prints_the_table(capsys):
    planning.main(["--sizes", "20", "--repeats", "1"])
    table = capsys.readouterr().out
    assert "| `cnnbench --help` |" in table
    assert "| `cnnbench validate` | 20 |" in table and "| `cnnbench plan` | 20 |" in table
