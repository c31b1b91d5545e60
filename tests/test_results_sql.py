"""The DuckDB and polars code of docs/results.md, run exactly as written, picks the same best
learning rates as `cnnbench report` (loose, compacted and re-run rows together)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnbench.cli.app import app
from cnnbench.results.compaction import compact
from cnnbench.results.store import ResultStore
from tests.helpers import results as rf

duckdb = pytest.importorskip("duckdb")
pl = pytest.importorskip("polars")

PAGE = (Path(__file__).parents[1] / "docs" / "results.md").read_text()
SECTION = PAGE[PAGE.index("## Reading results without cnnbench"):]
SQL = re.search(r"```sql\n(.*?)```", SECTION, re.S).group(1)
POLARS = re.search(r"```python\n(.*?)```", SECTION, re.S).group(1)


@pytest.fixture
def quickstart(tmp_path, monkeypatch):
    """results/quickstart with ties, a diverged seed, a compacted part and a re-run after it."""
    monkeypatch.chdir(tmp_path)
    folder = Path("results/quickstart")
    rf.write(folder, rf.runs(*rf.grid("sgd", {0.01: [0.5, 0.6], 0.1: [0.8, None], 1.0: [0.3, 0.3]}),
                             *rf.grid("adam", {0.001: [0.7, 0.7], 0.01: [0.7, 0.7]})))
    compact(folder)
    rf.write(folder, rf.runs(*rf.grid("momentum", {0.01: [0.4, 0.5], 0.1: [0.6, 0.65]})))
    # sgd lr=1.0 seed 0 re-run after the compaction: its newer row (0.95) must win
    rf.write(folder, rf.runs(rf.run("mlp", "sgd", 1.0, 0, val_acc=0.95)))
    return folder


def _report_best(folder: Path) -> dict[tuple[str, str], float]:
    result = CliRunner().invoke(app, ["report", str(folder), "--format", "json"])
    assert result.exit_code == 0, result.output
    return {(r["model"], r["optimizer"]): r["best_lr"] for r in json.loads(result.output)["best"]}


def test_the_docs_duckdb_query_matches_the_report(quickstart):
    rows = duckdb.sql(SQL).fetchall()
    got = {(model, optimizer): lr for model, optimizer, lr, *_ in rows}
    assert got == _report_best(quickstart)
    assert got[("mlp", "sgd")] == 1.0  # (0.95 + 0.3) / 2 beats 0.8 and a diverged seed
    assert got[("mlp", "adam")] == 0.001  # a tie goes to the smaller lr


def test_the_docs_polars_code_matches_the_report(quickstart, capsys):
    namespace: dict = {}
    exec(compile(POLARS, "docs/results.md", "exec"), namespace)
    best = namespace["best"]
    got = {(r["model"], r["optimizer"]): r["best_lr"] for r in best.iter_rows(named=True)}
    assert got == _report_best(quickstart)
    assert math.isclose(best.filter(pl.col("optimizer") == "sgd")["val_acc"][0], 0.625)
    assert ResultStore(quickstart).finished_ids()  # the folder is still cnnbench's
