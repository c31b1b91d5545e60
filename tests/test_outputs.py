"""Bad inputs that used to escape as a traceback or a silent accept (issue "Promises kept"): each
is one message and exit 2, before any work and with nothing written."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from cnnbench.cli import app
from tests.helpers import results as rf

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:
    rows = rf.grid("sgd", {0.01: [0.5], 0.1: [0.9]}) + rf.grid("adam", {0.01: [0.8]})
    return str(rf.write(tmp_path_factory.mktemp("results"), rf.runs(*rows)))


def _fails(args: list[str], *says: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for text in says:
        assert text in result.output, result.output


def test_html_output_under_a_file_or_in_a_read_only_folder(folder, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    _fails(["report", folder, "--format", "html", "--output", str(afile / "page.html")],
           "is a file, not a folder")
    _fails(["report", folder, "--format", "html", "--output", str(tmp_path)], "is a folder")
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere: a read-only folder cannot be made here")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    _fails(["report", folder, "--format", "html", "--output", str(locked / "p.html")],
           "not writable")
    assert not list(locked.iterdir())


def test_tensorboard_where_it_cannot_write(folder, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("")
    _fails(["export", folder, "--tensorboard", str(afile)], "is a file")
    _fails(["export", folder, "--tensorboard", str(afile / "logs")], "is a file, not a folder")


def test_an_mlflow_uri_of_no_known_scheme(folder, tmp_path):
    _fails(["export", folder, "--mlflow", "bogus-scheme://x"], "unknown scheme 'bogus-scheme'")
    afile = tmp_path / "afile"
    afile.write_text("")
    _fails(["export", folder, "--mlflow", f"sqlite:///{afile}/m.db"], "is a file, not a folder")


@pytest.mark.parametrize("sizes", ["0", "32,0", "-4"])
def test_profile_batch_sizes_must_be_positive(sizes):
    _fails(["profile", "mlp", "--batch-sizes", sizes, "--device", "cpu"], "positive integers")


def test_a_seed_beyond_int64_is_refused_at_validation(write_suite, tmp_path):
    path = write_suite(seeds=[99999999999999999999999])
    out = tmp_path / "out"
    _fails(["validate", str(path)], "seeds")
    _fails(["run", str(path), "--out", str(out)], "seeds")
    assert not out.exists()


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"cnnbench {version('cnnbench')}"


def test_every_run_row_records_the_cnnbench_that_ran_it(tmp_path):
    from importlib.metadata import version

    from cnnbench import load_results, run_suite
    from cnnbench.suite import validate_suite
    from tests.helpers.suites import TINY_SUITE

    run_suite(validate_suite({**TINY_SUITE, "matrix": {**TINY_SUITE["matrix"], "lr": [0.1]}}),
              out=tmp_path / "out")
    runs, _ = load_results(tmp_path / "out")
    assert set(runs["cnnbench_version"]) == {version("cnnbench")}


def test_track_refuses_an_unknown_scheme_before_training(write_suite, tmp_path):
    out = tmp_path / "out"
    _fails(["run", str(write_suite()), "--out", str(out), "--track", "mlflow:bogus://x"],
           "unknown scheme 'bogus'")
    assert not (out / "runs").exists()


def test_a_suite_past_the_run_limit_is_refused_before_it_is_expanded(write_suite, monkeypatch):
    typo = write_suite(matrix={"model": ["mlp"], "optimizer": ["sgd", "adam"],
                               "lr": {"log": [1e-6, 1.0], "num": 3000000}})
    _fails(["validate", str(typo)], "plans 6,000,000 runs", "more than the limit of 1,000,000",
           "matrix.lr", "CNNBENCH_MAX_RUNS=6000000")
    small = write_suite(name="small.yaml", seeds=3)  # 2 optimizers × 2 lrs × 3 seeds = 12
    monkeypatch.setenv("CNNBENCH_MAX_RUNS", "10")
    _fails(["validate", str(small)], "plans 12 runs", "seeds")
    monkeypatch.setenv("CNNBENCH_MAX_RUNS", "12")
    assert runner.invoke(app, ["validate", str(small)]).exit_code == 0
