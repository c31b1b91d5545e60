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
FormatOpt = Annotated[str, typer.Option("--format", help="table | markdown | csv | json")]
PlotsOpt = Annotated[Path | None, typer.Option(
    help="also write the figures (PNG and SVG) into this folder")]


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
    from cnnbench.results.store import ResultStore

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
    plots: PlotsOpt = None,
    shard: Annotated[str | None, typer.Option(
        help="run only shard K of N (e.g. 2/8); in a Slurm array task the default comes from "
             "SLURM_ARRAY_TASK_ID/COUNT")] = None,
    workers: Annotated[int, typer.Option(
        min=1, help="runs at once, in separate processes (one GPU each on cuda)")] = 1,
    rerun_failed: Annotated[bool, typer.Option(
        "--rerun-failed", help="run again runs that ended in error, oom or timeout")] = False,
) -> None:
    """Train every run of a suite (skipping finished ones) and report the best learning rates."""
    from cnnbench.execute.progress import make_reporter
    from cnnbench.execute.runner import run_suite
    from cnnbench.render.report import render_report
    from cnnbench.results.store import load_results
    from cnnbench.suite import expand
    from cnnbench.train.signals import EXIT_INTERRUPTED

    suite = _load(suite_file, set_, device)
    out = out or Path("results") / suite.name
    specs = _shard(expand(suite), shard)
    if dry_run:
        console.print(_plan_table(specs, {} if rerun else _done(out)))
        return
    outcome = run_suite(suite, out, rerun=rerun, rerun_failed=rerun_failed, data_dir=data_dir,
                        specs=specs, reporter=make_reporter(err_console), fail_fast=fail_fast,
                        workers=workers)
    runs, history = load_results(outcome.out)
    runs = runs[runs["run_id"].isin({s.run_id for s in specs})]
    render_report(runs, console)
    if plots is not None and not runs.empty:
        from cnnbench.render.plots import write_figures
        from cnnbench.render.report import Report

        for path in write_figures(Report(runs, history), runs, history, plots):
            err_console.print(f"wrote {path}", highlight=False)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(outcome.statuses.items()))
    err_console.print(f"results: {outcome.out}  ({counts}; {outcome.ran} ran, "
                      f"{outcome.skipped} skipped)")
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if not outcome.succeeded:
        raise typer.Exit(EXIT_RUN_FAILED)


def _shard(specs, shard: str | None):
    """The runs of `--shard K/N`, or of the Slurm array task we run in; else all of them."""
    from cnnbench.suite.shards import parse_shard, shard_from_env
    from cnnbench.suite.shards import shard as take

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
    from cnnbench.execute.slurm import SUITE_COPY, read_record
    from cnnbench.results.status import COLUMNS, suite_status
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
    from cnnbench.execute.slurm import SlurmRequest
    from cnnbench.execute.slurm import submit as submit_array

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
def list_(
    what: Annotated[str, typer.Argument(help="models | optimizers | datasets")],
    dataset: Annotated[str | None, typer.Option(
        help="models: also show parameters and FLOPs at this dataset's input")] = None,
    input_: Annotated[str | None, typer.Option(
        "--input", help="models: also show them at this CxHxW input, e.g. 3x32x32")] = None,
    classes: Annotated[int | None, typer.Option(
        help="models: class count with --input (default 10) or --dataset (its own)")] = None,
    family: Annotated[str | None, typer.Option(help="models: only this family")] = None,
) -> None:
    """List the registered models, optimizers or datasets, with their key facts."""
    from cnnbench.render import listing

    tables = {"models": listing.models_table, "optimizers": listing.optimizers_table,
              "datasets": listing.datasets_table}
    if what not in tables:
        raise CnnbenchError(f"cannot list {what!r}; choose one of: {', '.join(tables)}")
    if what != "models":
        console.print(tables[what]())
        return
    with err_console.status("building the models on the meta device to count FLOPs…"):
        table = listing.models_table(**listing.extra_input(dataset=dataset, input_text=input_,
                                                           classes=classes), family=family)
    console.print(table)


def _target(text: str | None) -> tuple[str, float] | None:
    if text is None:
        return None
    metric, _, value = text.partition("=")
    try:
        return metric.strip(), float(value)
    except ValueError:
        raise CnnbenchError(
            f"--target must read METRIC=VALUE, e.g. val_acc=0.97, not {text!r}") from None


@app.command()
def report(
    results_dir: Annotated[Path, typer.Argument(help="a results folder")],
    by: Annotated[str, typer.Option(
        help="columns that form a group (varying matrix axes are added)")] = "model,optimizer",
    metric: Annotated[str, typer.Option(
        help="what picks the best lr: val_acc | val_loss | train_acc | train_loss")] = "val_acc",
    at: Annotated[str, typer.Option(
        help="final: the last evaluation; best: each run's best validation epoch")] = "final",
    tolerance: Annotated[float, typer.Option(
        help="LR sensitivity: how close to the best counts (metric units; 0.01 = 1 point)")
    ] = 0.01,
    target: Annotated[str | None, typer.Option(
        help="time-to-target from the history, e.g. val_acc=0.97 (default: the suite's)")
    ] = None,
    fmt: FormatOpt = "table",
    plots: PlotsOpt = None,
) -> None:
    """Best learning rate per model and optimizer: test metric, LR sensitivity, time, memory."""
    from cnnbench.render.report import Report, write_report
    from cnnbench.results.store import load_results

    runs, history = load_results(results_dir)
    if runs.empty:
        raise CnnbenchError(f"no finished runs in {str(results_dir)!r}")
    result = Report(runs, history, metric=metric, at=at, by=[k for k in by.split(",") if k],
                    tolerance=tolerance, target=_target(target))
    write_report(result, console, fmt)
    if plots is not None:
        from cnnbench.render.plots import write_figures

        for path in write_figures(result, runs, history, plots):
            err_console.print(f"wrote {path}", highlight=False)


@app.command()
def compare(
    dir_a: Annotated[Path, typer.Argument(help="results folder A (e.g. before, or CPU)")],
    dir_b: Annotated[Path, typer.Argument(help="results folder B (e.g. after, or GPU)")],
    metric: Annotated[str, typer.Option(help="accuracy or loss to compare")] = "test_acc",
    fmt: FormatOpt = "table",
) -> None:
    """Two result sets side by side on their common runs: time and memory ratios, metric
    differences, flagged where beyond seed noise."""
    from cnnbench.analysis import compare as compare_runs
    from cnnbench.render.report import write_compare
    from cnnbench.results.store import load_results

    runs_a, _ = load_results(dir_a)
    runs_b, _ = load_results(dir_b)
    for runs in (runs_a, runs_b):
        if not runs.empty and metric not in runs:
            raise CnnbenchError(f"unknown metric {metric!r}; try test_acc, test_loss, val_acc")
    table = compare_runs(runs_a, runs_b, metric=metric) if not (
        runs_a.empty or runs_b.empty) else None
    if table is None:
        raise CnnbenchError("one of the folders holds no finished runs: nothing to compare")
    write_compare(table, console, fmt, metric=metric, names=(str(dir_a), str(dir_b)))


@app.command("grad-norms")
def grad_norms(
    results_dir: Annotated[Path, typer.Argument(help="a results folder")],
    plot: Annotated[Path | None, typer.Option(
        help="also draw the norm against depth into this folder (grad_norms.png and .svg)")
    ] = None,
    epochs: Annotated[str | None, typer.Option(
        help="comma-separated epochs to draw (default: 0 and the last)")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Per-layer gradient norms (the grad_norms probe): first vs last layer, per run and epoch."""
    from cnnbench.render.report import write_grad_norms
    from cnnbench.results.store import load_grad_norms, load_results
    from cnnbench.tools.gradients import depth_profile, depth_summary

    runs, _ = load_results(results_dir)
    profile = depth_profile(load_grad_norms(results_dir), runs)
    try:  # checked before anything is written
        chosen = [int(e) for e in epochs.split(",")] if epochs else sorted(
            {0, int(profile["epoch"].max())})
    except ValueError:
        raise CnnbenchError(f"--epochs {epochs!r}: give integers, e.g. 0,4") from None
    missing = sorted(set(chosen) - set(profile["epoch"]))
    if missing:
        raise CnnbenchError(f"--epochs: no gradient norms recorded at epoch(s) {missing}; "
                            f"recorded: {sorted(profile['epoch'].unique().tolist())}")
    write_grad_norms(depth_summary(profile), console, fmt)
    if plot is not None:
        from cnnbench.render.plots import grad_norm_depth, save

        for path in save(grad_norm_depth(profile, chosen), plot, "grad_norms"):
            err_console.print(f"wrote {path}", highlight=False)


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="a registered model or module:callable")],
    dataset: Annotated[str | None, typer.Option(
        help="take the input shape and class count from this dataset")] = None,
    input: Annotated[str | None, typer.Option(
        "--input", help="input shape CxHxW, e.g. 3x224x224 (default: the model's native input)")
    ] = None,
    classes: Annotated[int | None, typer.Option(
        min=2, help="output classes (default: the dataset's, else the model's native count)")
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
    from cnnbench.tools.profile import input_for, profile_model, profile_table, write_rows
    from cnnbench.train.devices import resolve_device

    if precision not in ("fp32", "bf16", "fp16"):
        raise CnnbenchError(f"--precision {precision!r}: choose fp32, bf16 or fp16")
    try:
        sizes = [int(b) for b in batch_sizes.split(",")]
    except ValueError:
        raise CnnbenchError(f"--batch-sizes {batch_sizes!r}: give integers, e.g. 32,64,128"
                            ) from None
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise CnnbenchError(f"--out {str(out)!r}: name a .parquet or .csv file")
    shape, default_classes = input_for(model, dataset=dataset, input=input, data_dir=data_dir)
    rows = profile_model(model, input_shape=shape, num_classes=classes or default_classes,
                         batch_sizes=sizes,
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


@app.command()
def trajectories(
    function: Annotated[str, typer.Option(help="rosenbrock | beale | saddle | ravine")] = "ravine",
    optimizers: Annotated[str | None, typer.Option(
        help="comma-separated optimizer names (default: sgd,momentum,nesterov,adagrad,rmsprop,"
             "adam)")] = None,
    lr: Annotated[str | None, typer.Option(
        help="one lr for all, or name=lr pairs, e.g. sgd=0.05,adam=0.3 (default: tuned per "
             "function and optimizer)")] = None,
    steps: Annotated[int | None, typer.Option(min=1, help="optimizer steps (default per "
                                                          "function)")] = None,
    out: Annotated[Path, typer.Option(help="picture file")] = Path("trajectories.png"),
    gif: Annotated[bool, typer.Option("--gif", help="write an animated GIF (OUT with the suffix "
                                                    ".gif) instead")] = False,
) -> None:
    """Draw each optimizer's path on a 2-D test function over its contour plot."""
    from cnnbench.tools.trajectories import draw_trajectories

    names = [name.strip() for name in optimizers.split(",") if name.strip()] if optimizers \
        else None
    rows, written = draw_trajectories(function, names, lr=lr, steps=steps, out=out, gif=gif)
    table = Table(title=f"{function}: where each optimizer ended")
    for column in ("optimizer", "lr", "steps", "x", "y", "distance to target", "f"):
        table.add_column(column, justify="left" if column == "optimizer" else "right")
    for r in rows:
        table.add_row(r["optimizer"], f"{r['lr']:g}", str(r["steps"]), f"{r['x']:.4g}",
                      f"{r['y']:.4g}", f"{r['distance']:.3g}", f"{r['loss']:.3g}")
    console.print(table)
    err_console.print(f"wrote {written}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
