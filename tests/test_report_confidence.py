"""The confidence sections of `cnnbench report` (paired comparisons, expected best after k
trials, P(best)) in every format, their honesty notes, and the bad input they reject."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

import tests.helpers.results as rf
from cnnbench.cli import app

runner = CliRunner()


def _rows(seeds: int) -> list[dict]:
    """adam beats sgd by 5 points on every seed; the seed moves both (shared weights)."""
    effect = [0.0, 0.03, -0.02, 0.04, -0.01][:seeds]
    return [rf.run(optimizer=opt, lr=lr, seed=s, val_acc=base + e + shift)
            for opt, grid, base in (("adam", (0.001, 0.01), 0.9), ("sgd", (0.01, 0.1), 0.85))
            for lr, shift in zip(grid, (-0.1, 0.0), strict=True)
            for s, e in enumerate(effect)]


@pytest.fixture(scope="module")
def five(tmp_path_factory) -> str:
    return str(rf.write(tmp_path_factory.mktemp("five"), rf.runs(*_rows(5))))


def _invoke(*args: str, code: int = 0):
    result = runner.invoke(app, list(args), env={"COLUMNS": "220"})
    assert result.exit_code == code, result.output
    return result.output


def test_table_shows_paired_budget_and_p_best_each_with_the_protocol(five):
    protocol = ("protocol: lr by best mean val_acc (final epoch) over 5 seed(s); tolerance "
                "0.01; test_acc reported; tests at α = 0.05, Holm per problem")
    first = _invoke("report", five)  # five seeds: the statistics are on the first screen too
    assert "paired differences per seed" in first and "P(best)" in first
    assert first.count(protocol) == 1 and "adam is best on mlp at lr" in first
    out = _invoke("report", five, "--section", "all")
    assert "paired differences per seed" in out
    assert "adam better" in out and "+5.00 pt" in out
    assert "expected best val_acc % after k trials" in out
    assert "P(best)" in out
    assert out.count(protocol) == 5  # under the two best-lr tables and the three new ones
    assert "note:" not in out  # five seeds: nothing to warn about


def test_a_name_with_brackets_is_shown_as_written(tmp_path):
    # "[w]" would be read as a style by rich's markup and vanish from the confidence tables
    rows = [{**row, "optimizer": row["optimizer"].replace("adam", "adam[w]"),
             "run_id": row["run_id"].replace("adam", "adamw")} for row in _rows(3)]
    out = _invoke("report", str(rf.write(tmp_path, rf.runs(*rows))))
    tables = out[out.index("paired differences per seed"):]
    assert "adam[w] better" in tables
    assert tables.count("adam[w]") >= 4  # paired (best and verdict), budget, P(best)


def test_markdown_json_and_csv_sections(five):
    out = _invoke("report", five, "--format", "markdown")
    assert "| mlp | adam | sgd | 0.01 / 0.1 | 5 | +5.00 pt |" in out
    assert "| mlp | adam | 1.00 | 1.00 |" in out  # P(best) and bootstrap rank
    doc = json.loads(_invoke("report", five, "--format", "json"))
    found = doc["confidence"]
    assert found["paired"][0]["verdict"] == "better" and found["paired"][0]["seeds"] == 5
    assert sum(r["p_best"] for r in found["p_best"]) == pytest.approx(1.0)
    assert [r["k"] for r in found["expected_best"] if r["optimizer"] == "sgd"] == \
        list(range(1, 11))
    assert found["protocol_line"].startswith("protocol: lr by best mean val_acc")
    paired = pd.read_csv(io.StringIO(_invoke("report", five, "--format", "csv", "--section",
                                             "paired")))
    assert paired[["best", "other", "verdict"]].values.tolist() == [["adam", "sgd", "better"]]
    budget = pd.read_csv(io.StringIO(_invoke("report", five, "--format", "csv", "--section",
                                             "budget")))
    assert len(budget) == 20 and {"k", "expected", "std"} <= set(budget)
    best = pd.read_csv(io.StringIO(_invoke("report", five, "--format", "csv")))
    assert "best_lr" in best


@pytest.mark.parametrize(("seeds", "claim"), [(1, "1 seed at some best lr: no test"),
                                              (2, "2 seeds at some best lr")])
def test_few_seeds_are_said(tmp_path, seeds, claim):
    folder = str(rf.write(tmp_path / "few", rf.runs(*_rows(seeds))))
    out = _invoke("report", folder, "--section", "all")
    assert claim in out
    if seeds == 1:
        assert "no test (1 seed)" in out and "adam better" not in out
        # the first screen leaves the empty statistics out and says why in one line
        first = _invoke("report", folder)
        assert "paired differences" not in first and "P(best)" not in first
        assert "(1 seed: not tested; run more seeds to tell)" in first


def test_no_seed_in_common_falls_back_to_unpaired(tmp_path):
    rows = [r for r in _rows(5) if (r["optimizer"] == "adam") == (r["seed"] < 3)]
    out = _invoke("report", str(rf.write(tmp_path / "apart", rf.runs(*rows))))
    assert "share no seed at their best lrs: no pairing possible, compared unpaired" in out
    assert "welch (unpaired)" in out


@pytest.mark.parametrize(("args", "message"), [
    (("--metric", "val_top5"), "cannot pick the best lr by 'val_top5'"),
    (("--at", "last"), "unknown evaluation 'last'; choose one of: final, best"),
    (("--tolerance", "0"), "--tolerance must be > 0"),
    (("--tolerance", "-0.01"), "--tolerance must be > 0"),
    (("--format", "csv", "--section", "ranks"),
     "unknown section 'ranks'; choose one of: all, best"),
    (("--format", "csv", "--section", "all"), "--format csv writes one table"),
])
def test_bad_report_input_exits_2(five, args, message):
    result = runner.invoke(app, ["report", five, *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_compare_factor_must_exceed_one(five):
    result = runner.invoke(app, ["compare", five, five, "--factor", "1"])
    assert result.exit_code == 2 and "--factor must be > 1" in result.output


def test_the_confidence_suite_is_valid_and_sized():
    from cnnbench.suite import expand, load_suite

    specs = expand(load_suite("suites/confidence.yaml"))
    assert len(specs) == 4 * 5 * 5
    assert {s.seed for s in specs} == set(range(5))
    assert {s.optimizer for s in specs} == {"sgd", "momentum", "adam", "rmsprop"}
