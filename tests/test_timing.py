"""Timings a reader can trust: each run records what it got of the machine, a run that shared it
is marked `contended` (tested beside a real CPU burner), the report marks its speed cells and
says so once, `compare` refuses to rank such times unless asked, `run --retime` re-times them,
and the first screen shows what matters."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import types

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from cnnbench import load_results, run_suite
from cnnbench.analysis.timing import contended_at_best, speed_spreads, timing
from cnnbench.cli import app
from cnnbench.suite import validate_suite
from cnnbench.train import machine
from tests.helpers.suites import TINY_SUITE

runner = CliRunner()


def _suite(**keys):
    return validate_suite({**TINY_SUITE, **keys})


# ─── the verdict ──────────────────────────────────────────────────────────────────────────────


def test_verdict_reads_the_cpu_share_and_the_gpus_neighbours():
    cpu, cuda = torch.device("cpu"), torch.device("cuda:0")
    timing_, why = machine.verdict(cpu, 0.49, 2, None, 2.1, 2)
    assert timing_ == "contended" and "49% of the CPU time its 2 thread(s)" in why
    assert "load 2.1 on 2 CPUs" in why
    assert machine.verdict(cpu, 0.97, 2, None, 0.5, 2) == ("clean", "")
    assert machine.verdict(cpu, None, 2, None, None, 2) == ("clean", "")  # too short to judge
    timing_, why = machine.verdict(cuda, 0.1, 1, (2, 3 * 2**30), 1.0, 16)
    assert timing_ == "contended" and "2 other process(es) on the GPU, holding 3,072 MiB" in why
    # on a GPU the host thread waits on the device: its low CPU share says nothing
    assert machine.verdict(cuda, 0.1, 1, (0, 0), 1.0, 16) == ("clean", "")


def test_gpu_neighbours_by_nvml_and_none_without_it(monkeypatch):
    cuda = torch.device("cuda:0")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed
    assert machine.gpu_neighbours(cuda) is None
    process = types.SimpleNamespace
    fake = types.SimpleNamespace(
        nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: index,
        nvmlDeviceGetComputeRunningProcesses=lambda handle: [
            process(pid=os.getpid(), usedGpuMemory=2**30),  # this process: not a neighbour
            process(pid=1, usedGpuMemory=2**20), process(pid=2, usedGpuMemory=None)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert machine.gpu_neighbours(cuda) == (2, 2**20)
    assert machine.gpu_neighbours(torch.device("cpu")) is None


# ─── detection on this machine, beside a real burner ──────────────────────────────────────────


def _spin() -> None:
    while True:
        pass


def _share_of_one_spinning_thread(seconds: float = 0.3) -> float:
    wall, cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() - wall < seconds:
        pass
    return (time.thread_time() - cpu) / (time.perf_counter() - wall)


@pytest.fixture
def quiet_machine():
    if _share_of_one_spinning_thread() < 0.9:
        pytest.skip("the machine is already loaded: a thread gets under 90% of a core")


SLOW = {**TINY_SUITE, "dataset": {**TINY_SUITE["dataset"], "train_size": 2000},
        "train": {"epochs": 3, "batch_size": 16}, "probes": ["time"],
        "matrix": {"model": [{"name": "mlp", "hidden": 64}], "optimizer": ["sgd"],
                   "lr": [0.01]}}


@pytest.mark.subprocess
def test_a_run_beside_a_cpu_burner_on_every_core_is_marked(tmp_path, quiet_machine):
    context = multiprocessing.get_context("spawn")
    burners = [context.Process(target=_spin, daemon=True) for _ in range(os.cpu_count() or 1)]
    for proc in burners:
        proc.start()
    time.sleep(0.5)
    try:
        run_suite(validate_suite(SLOW), out=tmp_path / "out")
    finally:
        for proc in burners:
            proc.kill()
            proc.join()
    runs, _ = load_results(tmp_path / "out")
    row = runs.iloc[0]
    assert row["timing"] == "contended", (row["cpu_share"], row["train_s"])
    assert "of the CPU time" in row["timing_reason"] and row["cpu_share"] < 0.8


def test_a_quiet_run_is_clean_and_records_what_it_got(tmp_path, quiet_machine):
    run_suite(validate_suite(SLOW), out=tmp_path / "out")
    runs, _ = load_results(tmp_path / "out")
    row = runs.iloc[0]
    assert row["timing"] == "clean" and row["timing_reason"] in ("", None)
    assert row["cpu_share"] > 0.8 and row["cpu_s"] > 0
    assert row["logical_cpus"] == os.cpu_count() and row["load_start"] >= 0
    assert pd.isna(row["gpu_other_processes"])  # a CPU run: no GPU to share


# ─── what the report, compare and --retime make of it ─────────────────────────────────────────


@pytest.fixture
def contended_folder(tmp_path, monkeypatch):
    """A folder whose sgd runs were all judged contended (the share every run gets is below a
    threshold of 2), and whose adam runs were clean."""
    out = tmp_path / "out"
    monkeypatch.setattr(machine, "CONTENDED_SHARE", 2.0)
    monkeypatch.setattr(machine, "JUDGED_S", 0.0)
    run_suite(_suite(matrix={**TINY_SUITE["matrix"], "optimizer": ["sgd"]}), out=out)
    monkeypatch.setattr(machine, "CONTENDED_SHARE", 0.0)
    run_suite(_suite(), out=out)  # adam's runs now; sgd's are done
    return out


def test_the_report_marks_contended_cells_and_says_so_once(contended_folder):
    result = runner.invoke(app, ["report", str(contended_folder)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    sgd = [line for line in lines if " sgd " in line and "dec" in line]
    adam = [line for line in lines if " adam " in line and "dec" in line]
    assert sgd and all(" *" in line for line in sgd) and not any(" *" in a for a in adam)
    notes = [line for line in lines if "trained while the machine was shared" in line]
    assert len(notes) == 1 and "2 of 4 run(s)" in notes[0] and "--retime" in notes[0]
    page = contended_folder / "page.html"
    html = runner.invoke(app, ["report", str(contended_folder), "--format", "html", "--output",
                               str(page)])
    assert html.exit_code == 0 and "trained while the machine was shared" in page.read_text()


def test_compare_refuses_contended_times_unless_asked(contended_folder, tmp_path):
    result = runner.invoke(app, ["compare", str(contended_folder), str(contended_folder)])
    assert result.exit_code == 2 and "trained on a shared machine" in result.output
    runs, _ = load_results(contended_folder)
    sgd_ids = runs.loc[runs["optimizer"] == "sgd", "run_id"]
    assert all(run_id in result.output for run_id in sgd_ids)
    assert "Traceback" not in result.output
    allowed = runner.invoke(app, ["compare", str(contended_folder), str(contended_folder),
                                  "--allow-contended"])
    assert allowed.exit_code == 0 and "their time ratios are the machine's" in allowed.output


def test_retime_runs_again_only_the_contended_runs(contended_folder):
    before, _ = load_results(contended_folder)
    result = runner.invoke(app, ["run", str(_suite_file(contended_folder)), "--out",
                                 str(contended_folder), "--retime"])
    assert result.exit_code == 0, result.output
    assert "2 ran, 2 skipped" in result.output
    after, _ = load_results(contended_folder)
    assert set(after.loc[after["optimizer"] == "sgd", "timing"]) == {"clean"}
    merged = before.merge(after, on="run_id", suffixes=("_before", "_after"))
    # seeded CPU runs: the same numbers again, only the times are new
    assert (merged["test_acc_before"] == merged["test_acc_after"]).all()


def _suite_file(folder):
    import yaml

    path = folder.parent / "suite.yaml"
    path.write_text(yaml.safe_dump(TINY_SUITE, sort_keys=False))
    return path


def test_an_older_folder_reports_as_before_with_timing_unknown_once(contended_folder):
    from tests.helpers.results import strip_columns

    strip_columns(contended_folder, [c for c in ("timing", "timing_reason", "cpu_s",
                                                 "cpu_share")])
    result = runner.invoke(app, ["report", str(contended_folder)])
    assert result.exit_code == 0 and result.output.count("timing unknown") == 1
    compared = runner.invoke(app, ["compare", str(contended_folder), str(contended_folder),
                                   "--allow-contended"])
    assert compared.exit_code == 0 and "does not apply there" in compared.output


def test_one_networks_speed_spread_is_flagged_even_where_the_probes_saw_nothing():
    runs = pd.DataFrame({"run_id": list("abcd"), "model": ["m"] * 3 + ["n"],
                         "dataset": "d", "batch_size": 16, "precision": "fp32",
                         "device": "cpu", "status": "ok", "s_per_epoch": [1.0, 1.1, 2.5, 9.0],
                         "timing": "clean"})
    spreads = speed_spreads(runs)
    assert [(s.model, s.low, s.high) for s in spreads] == [("m", 1.0, 2.5)]
    assert not timing(runs).trustworthy and not timing(runs).contended
    best = pd.DataFrame({"model": ["m"], "optimizer": ["x"], "best_lr": [0.1]})
    marked = runs.assign(optimizer="x", lr=[0.1, 0.2, 0.1, 0.1],
                         timing=["clean", "contended", "contended", "clean"])
    assert contended_at_best(marked, best, ["model", "optimizer"]).tolist() == [True]


# ─── the first screen ─────────────────────────────────────────────────────────────────────────


def test_the_quickstarts_first_screen_fits_in_30_lines(tmp_path):
    """The quickstart's shape (2 models × 4 optimizers, one seed) on tiny synthetic data."""
    import io

    from rich.console import Console

    from cnnbench.render.report import render_report

    suite = _suite(matrix={"model": [{"name": "mlp", "hidden": 16}, "lenet5"],
                           "optimizer": ["sgd", "momentum", "rmsprop", "adam"],
                           "lr": [0.01, 0.1]},
                   dataset={**TINY_SUITE["dataset"], "image_size": 28}, train={"epochs": 1})
    run_suite(suite, out=tmp_path / "out")
    runs, history = load_results(tmp_path / "out")
    console = Console(file=io.StringIO(), width=200)  # a wide terminal: no line wraps
    render_report(runs, console, history=history)
    screen = console.file.getvalue()
    assert len(screen.splitlines()) <= 30, screen
    assert screen.count("protocol:") == 1 and "paired differences" not in screen
    assert "(1 seed: not tested; run more seeds to tell)" in screen


def test_a_ranking_by_time_refuses_contended_times_unless_asked(contended_folder):
    args = ["report", str(contended_folder), "--section", "all", "--target", "val_acc=0"]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 0, refused.output
    assert "by test error (not by seconds to target: 2 run(s) shared the machine" in \
        refused.output
    allowed = runner.invoke(app, [*args, "--allow-contended"])
    assert "mean rank over 1 problem(s), by seconds to target (1 = best)" in allowed.output
