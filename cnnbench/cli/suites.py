"""Commands on suites: run, plan, validate, schema, and the cluster pair submit / status."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from cnnbench import api
from cnnbench.choices import EXECUTIONS
from cnnbench.cli.app import EXIT_RUN_FAILED, app
from cnnbench.cli.options import (
    Choice,
    DataDirOpt,
    DeviceOpt,
    ListFormat,
    ListFormatOpt,
    OutOpt,
    PlotsOpt,
    ResultsArg,
    SetOpt,
    SuiteArg,
    choice_option,
    console,
    err_console,
    print_written,
)

ExecutionChoice = Choice("ExecutionChoice", {e: e for e in EXECUTIONS})


def _load(suite_file: Path, overrides: list[str] | None, device: str | None = None):
    """Load and validate a suite; print its warnings."""
    suite, warnings = api.load(suite_file, overrides, device)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {suite_file}: {escape(warning)}", highlight=False)
    return suite


@app.command()
def run(
    suite_file: SuiteArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="show the runs; train nothing")] = False,
    rerun: Annotated[bool, typer.Option("--rerun", help="run again runs already finished")] = False,
    data_dir: DataDirOpt = None,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="stop at the first run that ends in error, oom or timeout")] = False,
    plots: PlotsOpt = None,
    shard: Annotated[str | None, typer.Option(
        help="run only shard K of N (e.g. 2/8); in a Slurm array task the default comes from "
             "SLURM_ARRAY_TASK_ID/COUNT")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="runs at once, in separate processes (one GPU each on cuda)")] = 1,
    rerun_failed: Annotated[bool, typer.Option(
        "--rerun-failed", help="run again runs that ended in error, oom or timeout")] = False,
    retime: Annotated[bool, typer.Option(
        "--retime", help="run again the runs whose timing was contended (they shared the "
                         "machine): same seeds, same numbers, new times")] = False,
    track: Annotated[str | None, typer.Option(
        help="log live to a tracker: mlflow:URI (a failing store never stops training)")
    ] = None,
    execution: Annotated[str | None, choice_option(
        ExecutionChoice, "execution", "--execution",
        help="sequential | ensemble | auto: train runs that differ only in lr, seed or "
             "hyper-parameter values as one vectorized ensemble (auto: on CUDA only); "
             "overrides the suite's `execution`")] = None,
    ensemble_max: Annotated[int | None, typer.Option(
        min=1, help="most runs in one ensemble (default: as many as the GPU's memory holds, "
                    "measured by a dry step; 16 on a CPU)")] = None,
    nproc: Annotated[int | None, typer.Option(
        "--nproc", min=1, help="processes per run: each run trains data-parallel over N (DDP: "
        "one GPU each on CUDA, gloo on a CPU); sets train.distributed.world_size")] = None,
) -> None:
    """Train every run of a suite (skipping finished ones) and report the best learning rates."""
    from cnnbench.render.tables import plan_rows, plan_table

    if nproc is not None:
        set_ = [*(set_ or []), f"train.distributed.world_size={nproc}"]
    suite = _load(suite_file, set_, device)
    out = api.results_dir(suite, out)
    search = api.searches(suite)
    specs, share = api.select_shard(api.first_round(suite, out), None if search else shard)
    if share:
        err_console.print(share, highlight=False)
    if dry_run:
        console.print(plan_table(plan_rows(specs, {} if rerun else api.finished(out))))
        _search_note(suite, out)
        return
    options = dict(reporter=_reporter(track, suite, suite_file), rerun=rerun,
                   rerun_failed=rerun_failed, retime=retime, data_dir=data_dir,
                   fail_fast=fail_fast,
                   workers=workers, execution=execution.value if execution else None,
                   ensemble_max=ensemble_max)
    done, rounds = (api.run_search(suite, out, shard=shard, **options) if search
                    else (api.run(suite, specs, out, **options), None))
    if not api.main_rank():  # a data-parallel launch's other ranks: rank 0 reports
        return
    _show_run(done, rounds, plots)
    _exit_for(done.outcome)


def _reporter(track: str | None, suite, suite_file: Path):
    """Progress on stderr; with `--track mlflow:URI`, also logged to MLflow as it trains."""
    from cnnbench.execute.progress import make_reporter

    reporter = make_reporter(err_console)
    if track is None:
        return reporter
    from cnnbench.execute.tracking import TrackingReporter, parse_track

    return TrackingReporter(reporter, parse_track(track)[1], suite.name, suite_file)


def _show_run(done, rounds, plots: Path | None) -> None:
    """The report of the runs asked for, the lr search's state, and the figures."""
    from cnnbench.render.report import render_report

    report = render_report(done.runs, console, history=done.history)
    if rounds is not None:
        from cnnbench.render.tables import search_table

        console.print(search_table(rounds.state))
        if rounds.waiting:
            err_console.print("this shard's share of the round is done; the next round starts "
                              "once every shard's is (re-run any shard then)", highlight=False)
    if plots is not None and report is not None:
        from cnnbench.render.confidence_figures import write_confidence_figures
        from cnnbench.render.plots import write_figures

        print_written(write_figures(report, done.runs, done.history, plots))
        print_written(write_confidence_figures(report, plots))


def _exit_for(outcome) -> None:
    """The counts line; exit 3 when a signal stopped the suite, 1 when a run failed."""
    from cnnbench.train.signals import EXIT_INTERRUPTED

    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items()))
    counts = counts or "no runs"
    err_console.print(f"results: {outcome.out}  ({counts}; {outcome.ran} ran, "
                      f"{outcome.skipped} skipped)")
    if outcome.interrupted or not outcome.succeeded:
        raise typer.Exit(EXIT_INTERRUPTED if outcome.interrupted else EXIT_RUN_FAILED)


@app.command()
def plan(suite_file: SuiteArg, set_: SetOpt = None, out: OutOpt = None,
         device: DeviceOpt = None, fmt: ListFormatOpt = ListFormat.table) -> None:
    """Show the expanded runs of a suite and their count, without training."""
    from cnnbench.render.records import write_rows
    from cnnbench.render.tables import plan_rows, plan_table

    suite = _load(suite_file, set_, device)
    out = api.results_dir(suite, out)
    rows = plan_rows(api.first_round(suite, out), api.finished(out))
    write_rows(rows, console, fmt.value, lambda: plan_table(rows))
    if fmt is ListFormat.table:
        _search_note(suite, out)


def _search_note(suite, out: Path) -> None:
    """Under round 1's plan: what the lr search's later rounds depend on."""
    from cnnbench.render.tables import search_plan_lines

    for line in search_plan_lines(suite, out):
        console.print(line, highlight=False)


@app.command()
def validate(suite_files: Annotated[list[Path], typer.Argument(help="suite YAML files")]) -> None:
    """Check suite files: exit 0 when all are valid, 2 with a message naming file, line, key."""
    from cnnbench.suite import expand

    for path in suite_files:
        suite = _load(path, None)
        count, tests = len(expand(suite)), api.range_tests(suite)
        console.print(f"[green]ok[/] {path}: {count} run(s)"
                      + (f" and the lr range test of {tests} group(s) (start: auto), whose "
                         "start grids join round 1" if tests else ""))


@app.command()
def schema() -> None:
    """Print the suite format's JSON Schema (for editor completion and checks)."""
    from cnnbench.suite import Suite

    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cnnbench suite"
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


@app.command()
def status(
    results_dir: ResultsArg,
    suite_file: Annotated[Path | None, typer.Option(
        "--suite", help="the suite, to list pending runs (default: the copy `submit` made)")
    ] = None,
    set_: SetOpt = None,
    shards: Annotated[int | None, typer.Option(
        min=1, help="count per shard of N (default: what `submit` recorded)")] = None,
    fmt: ListFormatOpt = ListFormat.table,
) -> None:
    """Done / failed / interrupted / pending runs per shard and in all, and which are left."""
    from cnnbench.render.records import write_rows
    from cnnbench.render.tables import status_lines, status_rows, status_table

    report, record = api.status(results_dir, suite_file, set_, shards)
    if fmt is not ListFormat.table:
        unfinished = [{"run_id": r, "shard": s, "state": state,
                       "has_checkpoint": r in report.resumable}
                      for r, s, state in report.unfinished]
        document = {"results": str(results_dir), "job_id": record.get("job_id"),
                    "counts": status_rows(report), "unfinished": unfinished}
        write_rows(status_rows(report), console, fmt.value, lambda: None, document)
        return
    console.print(status_table(results_dir, report, record))
    if "rounds" in record:
        waiting = (f" (waits for the lr range test of {record['range_tests_pending']} "
                   "group(s))" if record["range_tests_pending"] else "")
        console.print(f"lr search: {record['rounds']} round(s) so far, "
                      + ("finished" if record["search_finished"] else
                         f"round {record['rounds']} in progress{waiting}"), highlight=False)
    for line in status_lines(report):
        console.print(line, highlight=False)


@app.command()
def submit(
    suite_file: SuiteArg,
    out: Annotated[Path, typer.Option(help="results folder (shared by all array tasks)")],
    set_: SetOpt = None,
    partition: Annotated[str | None, typer.Option(help="Slurm partition")] = None,
    time: Annotated[str, typer.Option(help="time limit per task, e.g. 02:00:00")] = "02:00:00",
    gpus_per_task: Annotated[int, typer.Option(min=0)] = 0,
    cpus_per_task: Annotated[int, typer.Option(min=1)] = 8,
    mem: Annotated[str, typer.Option(help="memory per task, e.g. 32G")] = "32G",
    array_parallelism: Annotated[int, typer.Option(
        min=1, help="array tasks running at once")] = 16,
    shards: Annotated[int | None, typer.Option(
        min=1, help="array tasks (default: min(runs, --array-parallelism))")] = None,
    data_dir: DataDirOpt = None,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the sbatch script only")
                       ] = False,
    nodes: Annotated[int, typer.Option(
        min=1, help="nodes per array task: a data-parallel suite's train.distributed."
                    "world_size processes spread over them, one Slurm task each")] = 1,
) -> None:
    """Submit the suite as one Slurm job array (submitit), one `run --shard K/N` per task."""
    from cnnbench.execute.slurm import SlurmRequest
    from cnnbench.execute.slurm import submit as submit_array
    from cnnbench.packaged import resolve_suite

    suite_file = resolve_suite(suite_file)  # a packaged suite's name: its file
    _load(suite_file, set_)  # warnings once, here
    request = SlurmRequest(partition, time, gpus_per_task, cpus_per_task, mem,
                           array_parallelism, shards, nodes)
    done = submit_array(suite_file, out, request, overrides=set_, data_dir=data_dir,
                        rerun_failed=rerun_failed, dry_run=dry_run)
    if dry_run:
        sys.stdout.write(done.script)
        return
    search = " (this lr search round; a job after it submits the next)" if api.searches(
        api.load(suite_file, set_)[0]) else ""
    what = (f"job {done.job_id}: the lr range test of {done.range_tests} group(s), then it "
            "submits round 1 (a job after each round submits the next)" if done.range_tests
            else f"job array {done.job_id}: {done.shards} task(s) over {done.runs} run(s){search}")
    console.print(f"submitted Slurm {what} into {out}; logs in {done.folder}\n"
                  f"follow it with: cnnbench status {out}", highlight=False)
