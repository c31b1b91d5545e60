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
) -> None:
    """Train every run of a suite (skipping finished ones) and report the best learning rates."""
    from cnnbench.executors import run_suite
    from cnnbench.progress import make_reporter
    from cnnbench.report import render_report
    from cnnbench.store import load_results
    from cnnbench.suite import expand

    suite = _load(suite_file, set_, device)
    out = out or Path("results") / suite.name
    specs = expand(suite)
    if dry_run:
        console.print(_plan_table(specs, {} if rerun else _done(out)))
        return
    outcome = run_suite(suite, out, rerun=rerun, data_dir=data_dir, specs=specs,
                        reporter=make_reporter(err_console), fail_fast=fail_fast)
    runs, _ = load_results(outcome.out)
    render_report(runs[runs["run_id"].isin({s.run_id for s in specs})], console)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items()))
    err_console.print(f"results: {outcome.out}  ({counts}; {outcome.ran} ran, "
                      f"{outcome.skipped} skipped)")
    if not outcome.succeeded:
        raise typer.Exit(EXIT_RUN_FAILED)


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
def profile(
    model: Annotated[str, typer.Argument(help="a registered model or module:callable")],
    dataset: Annotated[str | None, typer.Option(
        help="take the input shape and class count from this dataset")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", help="input shape CxHxW, e.g. 3x224x224 (default: the model's native input)")
    ] = None,
    batch_sizes: Annotated[str, typer.Option(help="comma-separated")] = "32,64,128",
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    precision: Annotated[str, typer.Option(help="fp32 | bf16 | fp16 (autocast)")] = "fp32",
    channels_last: Annotated[bool, typer.Option("--channels-last")] = False,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model")] = False,
    warmup: Annotated[int, typer.Option(min=0, help="untimed steps per phase")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="timed steps per phase")] = 20,
    out: Annotated[Path | None, typer.Option(help="also write the rows (.parquet or .csv)")
                   ] = None,
    data_dir: Annotated[str | None, typer.Option(help="where datasets live")] = None,
) -> None:
    """Inference and training speed of one model on synthetic data, per batch size."""
    from cnnbench.env import resolve_device
    from cnnbench.profile import input_for, profile_model, profile_table, write_rows

    if precision not in ("fp32", "bf16", "fp16"):
        raise CnnbenchError(f"--precision {precision!r}: choose fp32, bf16 or fp16")
    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        raise CnnbenchError(f"--batch-sizes {batch_sizes!r}: give integers, e.g. 32,64,128"
                            ) from None
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise CnnbenchError(f"--out {str(out)!r}: name a .parquet or .csv file")
    shape, classes = input_for(model, dataset=dataset, input=input, data_dir=data_dir)
    rows = profile_model(model, input_shape=shape, num_classes=classes, batch_sizes=sizes,
                         device=resolve_device(device), precision=precision,
                         channels_last=channels_last, compile=compile, warmup=warmup,
                         repeats=repeats)
    console.print(profile_table(rows))
    if out is not None:
        write_rows(rows, out)


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
