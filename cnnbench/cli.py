"""The `cnnbench` command line. Each command parses, calls one library function, renders.

User errors (`CnnbenchError`) are turned into one message on stderr and exit code 2, here, in
`CnnbenchGroup.invoke` — nowhere else.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from cnnbench.errors import CnnbenchError

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


class CnnbenchGroup(TyperGroup):
    """Turns every `CnnbenchError` raised by a command into one message and exit code 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CnnbenchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_USER_ERROR) from None


app = typer.Typer(cls=CnnbenchGroup, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=False,
                  help="Benchmark image classifiers and their optimizers from YAML suites.")

SuiteArg = Annotated[Path, typer.Argument(help="suite YAML file")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="override a suite key, e.g. --set train.epochs=1 (repeatable)")]
DeviceOpt = Annotated[str | None, typer.Option(
    help="auto | cpu | cuda | cuda:N (overrides the suite)")]
OutOpt = Annotated[Path | None, typer.Option(help="results folder (default results/<suite name>)")]


def _load(suite_file: Path, overrides: list[str] | None, device: str | None):
    """Load and validate a suite; print its warnings (include/exclude entries that do nothing)."""
    from cnnbench.suite import load_suite, suite_warnings

    overrides = list(overrides or [])
    if device is not None:
        overrides.append(f"device={device}")
    suite = load_suite(suite_file, overrides)
    for warning in suite_warnings(suite):
        err_console.print(f"[yellow]warning:[/] {suite_file}: {escape(warning)}", highlight=False)
    return suite


def _plan_table(specs, done: dict[str, str]) -> Table:
    table = Table(title=f"{len(specs)} run(s)")
    for column in ("#", "run_id", "model", "optimizer", "lr", "batch", "seed", "state"):
        table.add_column(column, justify="right" if column in ("#", "lr", "seed") else "left")
    for i, spec in enumerate(specs, 1):
        table.add_row(str(i), spec.run_id, spec.model, spec.optimizer, f"{spec.lr:.3g}",
                      str(spec.batch_size), str(spec.seed), done.get(spec.run_id, "pending"))
    return table


def _done(out: Path) -> dict[str, str]:
    from cnnbench.store import ResultStore

    store = ResultStore(out)
    return store.finished_ids() if store.runs_dir.is_dir() else {}


@app.command()
def run(
    suite_file: SuiteArg,
    set_: SetOpt = None,
    out: OutOpt = None,
    device: DeviceOpt = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="show the runs; train nothing")] = False,
    rerun: Annotated[bool, typer.Option("--rerun", help="run again runs already finished")] = False,
    data_dir: Annotated[str | None, typer.Option(help="where datasets live")] = None,
    fail_fast: Annotated[bool, typer.Option(
        "--fail-fast", help="stop at the first run that ends in error, oom or timeout")] = False,
    shard: Annotated[str | None, typer.Option(
        help="run only shard K of N (e.g. 2/8); in a Slurm array task the default comes from "
             "SLURM_ARRAY_TASK_ID/COUNT")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="runs at once, in separate processes (one GPU each on cuda)")] = 1,
    rerun_failed: Annotated[bool, typer.Option(
        "--rerun-failed", help="run again runs that ended in error, oom or timeout")] = False,
) -> None:
    """Train every run of a suite (skipping finished ones) and report the best learning rates."""
    from cnnbench.executors import run_suite
    from cnnbench.progress import make_reporter
    from cnnbench.report import render_report
    from cnnbench.signals import EXIT_INTERRUPTED
    from cnnbench.store import load_results
    from cnnbench.suite import expand

    suite = _load(suite_file, set_, device)
    out = out or Path("results") / suite.name
    specs = _shard(expand(suite), shard)
    if dry_run:
        console.print(_plan_table(specs, {} if rerun else _done(out)))
        return
    outcome = run_suite(suite, out, rerun=rerun, rerun_failed=rerun_failed, data_dir=data_dir,
                        specs=specs, reporter=make_reporter(err_console), fail_fast=fail_fast,
                        workers=workers)
    runs, _ = load_results(outcome.out)
    render_report(runs[runs["run_id"].isin({s.run_id for s in specs})], console)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items()))
    err_console.print(f"results: {outcome.out}  ({counts}; {outcome.ran} ran, "
                      f"{outcome.skipped} skipped)")
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.succeeded:
        raise typer.Exit(EXIT_RUN_FAILED)


def _shard(specs, shard: str | None):
    """The runs of `--shard K/N`, or of the Slurm array task we run in; else all of them."""
    from cnnbench.executors import parse_shard, shard_from_env
    from cnnbench.executors import shard as take

    if shard is not None:
        k, n = parse_shard(shard)
        source = "--shard"
    elif (found := shard_from_env()) is not None:
        k, n = found
        source = "Slurm array task (SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)"
    else:
        return specs
    mine = take(specs, k, n)
    err_console.print(f"shard {k}/{n} from {source}: {len(mine)} of {len(specs)} run(s)",
                      highlight=False)
    return mine


@app.command()
def status(
    results_dir: Annotated[Path, typer.Argument(help="a results folder")],
    suite_file: Annotated[Path | None, typer.Option(
        "--suite", help="the suite, to list pending runs (default: the copy `submit` made)")
    ] = None,
    set_: SetOpt = None,
    shards: Annotated[int | None, typer.Option(
        min=1, help="count per shard of N (default: what `submit` recorded)")] = None,
) -> None:
    """Done / failed / interrupted / pending runs per shard and in all, and which are left."""
    from cnnbench.slurm import SUITE_COPY, read_record
    from cnnbench.status import COLUMNS, suite_status
    from cnnbench.suite import expand

    record = read_record(results_dir) or {}
    if suite_file is None and (results_dir / SUITE_COPY).exists():
        suite_file, set_ = results_dir / SUITE_COPY, [*record.get("overrides", []), *(set_ or [])]
    specs = expand(_load(suite_file, set_, None)) if suite_file is not None else None
    report = suite_status(results_dir, specs, shards or record.get("shards"))
    table = Table(title=f"{results_dir}" + (f" (Slurm job {record['job_id']})"
                                            if record.get("job_id") else ""))
    for column in ("shard", *COLUMNS, "total"):
        table.add_column(column, justify="left" if column == "shard" else "right")
    for name, counts in report.counts.items():
        if name == "all" and len(report.counts) > 1:
            table.add_section()
        cells = [str(counts[c]) if report.known_suite or c != "pending" else "?"
                 for c in COLUMNS]
        table.add_row(name, *cells, str(sum(counts.values())))
    console.print(table)
    if not report.known_suite:
        console.print("pending runs unknown: pass --suite SUITE")
    for run_id, shard_name, state in report.unfinished:
        note = ", has a checkpoint" if run_id in report.resumable else ""
        console.print(f"{state}: {run_id} (shard {shard_name}{note})", highlight=False)


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
    data_dir: Annotated[str | None, typer.Option(help="where datasets live")] = None,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the sbatch script only")
                       ] = False,
) -> None:
    """Submit the suite as one Slurm job array (submitit), one `run --shard K/N` per task."""
    from cnnbench.slurm import SlurmRequest
    from cnnbench.slurm import submit as submit_array

    _load(suite_file, set_, None)  # warnings once, here
    request = SlurmRequest(partition, time, gpus_per_task, cpus_per_task, mem,
                           array_parallelism, shards)
    done = submit_array(suite_file, out, request, overrides=set_, data_dir=data_dir,
                        rerun_failed=rerun_failed, dry_run=dry_run)
    if dry_run:
        sys.stdout.write(done.script)
        return
    console.print(f"submitted Slurm job array {done.job_id}: {done.shards} task(s) over "
                  f"{done.runs} run(s) into {out}; logs in {done.folder}\n"
                  f"follow it with: cnnbench status {out}", highlight=False)


@app.command()
def plan(suite_file: SuiteArg, set_: SetOpt = None, out: OutOpt = None,
         device: DeviceOpt = None) -> None:
    """Show the expanded runs of a suite and their count, without training."""
    from cnnbench.suite import expand

    suite = _load(suite_file, set_, device)
    console.print(_plan_table(expand(suite), _done(out or Path("results") / suite.name)))


@app.command()
def validate(suite_files: Annotated[list[Path], typer.Argument(help="suite YAML files")]) -> None:
    """Check suite files: exit 0 when all are valid, 2 with a message naming file, line, key."""
    from cnnbench.suite import expand

    for path in suite_files:
        count = len(expand(_load(path, None, None)))
        console.print(f"[green]ok[/] {path}: {count} run(s)")


@app.command("list")
def list_(what: Annotated[str, typer.Argument(help="models | optimizers | datasets")]) -> None:
    """List the registered models, optimizers or datasets, with their key facts."""
    from cnnbench import listing

    tables = {"models": listing.models_table, "optimizers": listing.optimizers_table,
              "datasets": listing.datasets_table}
    if what not in tables:
        raise CnnbenchError(f"cannot list {what!r}; choose one of: {', '.join(tables)}")
    console.print(tables[what]())


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="a results folder")],
    metric: Annotated[str, typer.Option(help="metric that picks the best lr")] = "val_acc",
) -> None:
    """Best learning rate per model and optimizer, with test accuracy and time per epoch."""
    from cnnbench.report import render_report
    from cnnbench.store import load_results

    runs, _ = load_results(results_dir)
    if not runs.empty and metric not in runs:
        raise CnnbenchError(f"unknown metric {metric!r}; try val_acc, val_loss, test_acc")
    render_report(runs, console, metric)


@app.command()
def schema() -> None:
    """Print the suite format's JSON Schema (for editor completion and checks)."""
    from cnnbench.suite import Suite

    schema = Suite.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cnnbench suite"
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
