"""The command line for pipes, hostile files and wheels: light commands import no heavy module,
tables survive pipes, listings in csv/json, every bad suite file is exit 2 with one message and
nothing written, packaged suites, the starter suite, the cost cache."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cnnbench.cli import app
from cnnbench.errors import SuiteError
from cnnbench.suite import load_suite
from tests.helpers.suites import TINY_SUITE

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "suites" / "quickstart.yaml"
HEAVY = ("torch", "pandas", "matplotlib")
runner = CliRunner()


def _imports(*args: str) -> set[str]:
    """The heavy modules a fresh process imports to run `cnnbench ARGS`."""
    code = ("import sys\nfrom cnnbench.cli import main\nsys.argv = ['cnnbench', *sys.argv[1:]]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    return set(done.stderr.strip().splitlines()[-1].split()) if done.stderr.strip() else set()


@pytest.mark.subprocess
def test_light_commands_import_no_heavy_module(tmp_path):
    assert _imports("--help") == set()
    assert _imports("schema") == set()
    assert _imports("init", "x", "--help") == set()
    assert "torch" not in _imports("report", str(tmp_path))
    assert "torch" not in _imports("compare", str(tmp_path), str(tmp_path))
    import cnnbench  # noqa: F401  the package itself is light too
    code = f"import sys, cnnbench; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.stdout.strip() == "[]"


def test_public_api_still_imports():
    import cnnbench
    from cnnbench import (  # noqa: F401
        CnnbenchError,
        SuiteError,
        create_model,
        create_optimizer,
        load_results,
        load_suite,
        run_suite,
    )

    with pytest.raises(AttributeError):
        cnnbench.no_such_name  # noqa: B018


@pytest.mark.subprocess
def test_list_models_in_a_pipe_cuts_no_cell(tmp_path):
    """`cnnbench list models | grep resnet50` finds the row, with the full parameter count."""
    env = {**os.environ, "CNNBENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-m", "cnnbench", "list", "models"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 0
    rows = [line for line in done.stdout.splitlines() if " resnet50 " in line]
    assert rows and "25,557,032" in rows[0] and "…" not in done.stdout
    assert (tmp_path / "cache" / "model_costs.json").is_file()


def test_cost_cache_is_exact_and_invalidated(tmp_path, monkeypatch):
    from cnnbench.train import cost_cache
    from cnnbench.train.flops import model_cost

    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path))
    first = cost_cache.CostCache()
    cost = first.cost("lenet5", (1, 32, 32), 10)
    assert cost == model_cost("lenet5", (1, 32, 32), 10)
    first.save()
    entries = json.loads((tmp_path / "model_costs.json").read_text())
    assert list(entries.values()) == [[cost.parameters, cost.flops]]
    again = cost_cache.CostCache()
    calls = []
    monkeypatch.setattr(cost_cache, "model_cost", lambda *a: calls.append(a))
    assert again.cost("lenet5", (1, 32, 32), 10) == cost and calls == []
    # the model code changed: its hash differs, so the figure is counted again
    monkeypatch.setattr(cost_cache, "_code_hash", lambda name: "changed")
    monkeypatch.setattr(cost_cache, "model_cost", model_cost)
    assert cost_cache.CostCache().cost("lenet5", (1, 32, 32), 10) == cost
    (tmp_path / "model_costs.json").write_text("{damaged")
    assert cost_cache.CostCache().entries == {}


def test_listings_as_csv_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CNNBENCH_CACHE", str(tmp_path / "cache"))
    result = runner.invoke(app, ["list", "models", "--family", "lenet", "--format", "json"])
    assert result.exit_code == 0, result.output
    [lenet] = json.loads(result.stdout)
    assert lenet["name"] == "lenet5" and lenet["params"] == 61706
    result = runner.invoke(app, ["list", "optimizers", "--format", "csv"])
    names = [row["name"] for row in csv.DictReader(io.StringIO(result.stdout))]
    assert "sgd" in names and "adam" in names
    result = runner.invoke(app, ["plan", str(QUICKSTART), "--format", "csv",
                                 "--out", str(tmp_path / "r")])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 40 and {r["state"] for r in rows} == {"pending"}
    result = runner.invoke(app, ["list", "suites", "--format", "json"])
    suites = {row["name"]: row for row in json.loads(result.stdout)}
    assert suites["quickstart"]["runs"] == 40 and "lecture/optimizers" in suites
    result = runner.invoke(app, ["list", "datasets", "--format", "bogus"])
    assert result.exit_code == 2 and "choose one of: table, csv, json" in result.output


def test_status_as_json(tmp_path):
    from tests.helpers import results as hand

    folder = hand.write(tmp_path / "r", hand.runs(hand.run(), hand.run(lr=0.01,
                                                                       status="error")))
    result = runner.invoke(app, ["status", str(folder), "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["counts"] == [{"shard": "all", "done": 1, "failed": 1, "interrupted": 0,
                              "pending": None, "total": 2}]


def test_packaged_suite_by_name_and_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["plan", "quickstart", "--format", "json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 40
    result = runner.invoke(app, ["validate", "lecture/keras_mnist"])
    assert result.exit_code == 0 and "6 run(s)" in result.output
    result = runner.invoke(app, ["plan", "quickstrat"])
    assert result.exit_code == 2 and "packaged: " in result.output and "quickstart" in \
        result.output
    result = runner.invoke(app, ["init", "mine"])
    assert result.exit_code == 0, result.output
    assert "mine" in load_suite(tmp_path / "mine.yaml").name
    text = (tmp_path / "mine.yaml").read_text()
    assert text.startswith("#")
    result = runner.invoke(app, ["init", "mine"])
    assert result.exit_code == 2 and "not overwritten" in result.output
    assert (tmp_path / "mine.yaml").read_text() == text
    assert runner.invoke(app, ["init", "../up"]).exit_code == 2


# ─── bad input: one message, exit 2, nothing written ───────────────────────────────────────────

BASE = yaml.safe_dump(TINY_SUITE, sort_keys=False)
BAD = {
    "binary": bytes(range(256)) * 4,
    "latin-1": ("# café\n" + BASE).encode("latin-1"),
    "NUL byte": BASE.encode() + b"\x00",
    "deep flow nesting": ("name: x\nmatrix: " + "[" * 5000 + "]" * 5000).encode(),
    "deep block nesting": ("name: x\nmatrix:\n" + "".join(
        "  " * i + "a:\n" for i in range(1, 3000))).encode(),
    "recursive alias": ("a: &a [*a]\n" + BASE).encode(),
    "alias bomb": ("a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
        f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]\n" for p, k in zip("abcde", "bcdef"))
        + BASE).encode(),
    "duplicate key": (BASE + "seeds: 2\n").encode(),
    "name: off": BASE.replace("name: tiny", "name: off").encode(),
    "name: 123": BASE.replace("name: tiny", "name: 123").encode(),
    "epochs as text": BASE.replace("epochs: 2", "epochs: '2'").encode(),
    "epochs as float": BASE.replace("epochs: 2", "epochs: 2.5").encode(),
    "batch size true": BASE.replace("batch_size: 16", "batch_size: true").encode(),
    "seeds true": BASE.replace("seeds: 1", "seeds: true").encode(),
    "lr as text": BASE.replace("- 0.01\n", "- '0.01'\n").encode(),
    "python tag": BASE.replace("seeds: 1", "seeds: !!python/object:os.system 1").encode(),
    "empty": b"",
    "a list": b"- a\n",
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_suite_file_is_one_message(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "bad.yaml"
    path.write_bytes(BAD[case])
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2, (case, result.output)
    assert result.output.startswith("error: ") and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]  # nothing written


def test_yaml_type_surprises_say_why(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(BASE.replace("name: tiny", "name: off"))
    with pytest.raises(SuiteError, match=r":1: name: .*YAML reads off as the boolean false; "
                                         r"quote it"):
        load_suite(path)
    path.write_text(BASE + "seeds: 2\n")
    with pytest.raises(SuiteError, match=r"key 'seeds' given twice \(first at line \d+\)"):
        load_suite(path)
    path.write_text(BASE.encode("utf-16").decode("latin-1"), encoding="latin-1")
    assert load_suite(path).name == "tiny"  # UTF-16 with its byte-order mark is YAML too


def test_data_missing_at_start_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = {**TINY_SUITE, "dataset": {"name": "cifar10", "root": str(tmp_path / "none"),
                                      "download": False}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["run", "s.yaml"])
    assert result.exit_code == 2 and "cifar10" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


def _nested():
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.text(max_size=6), inner, max_size=4), max_leaves=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=300))
def test_any_bytes_load_or_fail_with_a_suite_error(raw, tmp_path):
    path = tmp_path / "any.yaml"
    path.write_bytes(raw)
    try:
        load_suite(path)
    except SuiteError:
        pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(doc=_nested(), key=st.sampled_from(["matrix", "train", "dataset", "name", "seeds",
                                            "include", "probes"]))
def test_any_nested_document_loads_or_fails_with_a_suite_error(doc, key, tmp_path):
    path = tmp_path / "nested.yaml"
    path.write_text(yaml.safe_dump({**TINY_SUITE, key: doc}))
    try:
        load_suite(path)
    except SuiteError:
        pass


@pytest.mark.subprocess
def test_status_of_a_submitted_suite_counts_recorded_run_ids_without_torch(tmp_path,
                                                                           write_suite):
    import shutil

    import cnnbench
    from cnnbench import api
    from cnnbench.execute.progress import PlainReporter
    from cnnbench.suite import expand, shard

    suite_file = write_suite()
    suite = cnnbench.load_suite(suite_file)
    specs = expand(suite)
    out = tmp_path / "out"
    cnnbench.run_suite(suite, out, specs=shard(specs, 1, 2), reporter=PlainReporter(io.StringIO()))
    shutil.copyfile(suite_file, out / "suite.yaml")  # what `submit` leaves, as it records it
    ids = [[s.run_id for s in shard(specs, k, 2)] for k in (1, 2)]
    (out / "submit.json").write_text(json.dumps({"job_id": "7", "shards": 2, "overrides": [],
                                                 "suite": "suite.yaml", "shard_run_ids": ids}))
    recorded, _ = api.status(out, None, None, None)
    expanded, _ = api.status(out, suite_file, None, 2)
    assert recorded.counts == expanded.counts and recorded.unfinished == expanded.unfinished
    assert recorded.counts["1/2"]["done"] == len(ids[0])
    assert recorded.counts["2/2"]["pending"] == len(ids[1])
    assert "torch" not in _imports("status", str(out))


def test_every_choice_survives_the_enum_conversion_of_typer_before_0_29():
    """typer < 0.29 runs its own enum converter on what a `parser=` returns, looking the member
    up by `str(member)`: with str() the enum's repr, every choice arrived as None there (and
    `--execution ensemble` silently trained sequentially on a GPU machine with typer 0.27.2)."""
    from cnnbench.cli import options, results, suites

    kinds = [options.Format, options.ListFormat, options.Precision, options.At, options.Listing,
             results.Section, suites.ExecutionChoice]
    for kind in kinds:
        by_str = {str(member.value): member for member in kind}  # typer 0.12–0.28's converter
        for member in kind:
            assert by_str[str(member)] is member
            assert options.choice(kind, "x")(str(member.value)) is member
