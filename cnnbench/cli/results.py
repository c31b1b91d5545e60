"""Commands on results folders: report, compare, grad-norms, compact, upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnbench import api
from cnnbench.cli.app import app
from cnnbench.cli.options import (
    At,
    Choice,
    Format,
    FormatOpt,
    PlotsOpt,
    ResultsArg,
    choice_option,
    console,
    err_console,
    parse_list,
    print_written,
)
from cnnbench.errors import CnnbenchError
from cnnbench.outputs import check_output_file


def _target(text: str | None) -> tuple[str, float] | None:
    if text is None:
        return None
    metric, _, value = text.partition("=")
    try:
        return metric.strip(), float(value)
    except ValueError:
        raise CnnbenchError(
            f"--target must read METRIC=VALUE, e.g. val_acc=0.97, not {text!r}") from None


class Section(Choice):
    """What `report` shows: `all` of it (the table's default is the first screen), or the one
    table `--format csv` writes."""

    all = "all"
    best = "best"
    paired = "paired"
    budget = "budget"
    crossings = "crossings"
    p_best = "p-best"


@app.command()
def report(
    results_dir: ResultsArg,
    by: Annotated[str, typer.Option(
        help="columns that form a group (varying matrix axes are added)")] = "model,optimizer",
    metric: Annotated[str, typer.Option(
        help="what picks the best lr: val_acc | val_loss | train_acc | train_loss")] = "val_acc",
    at: Annotated[str, choice_option(
        At, "evaluation", "--at",
        help="final: the last evaluation; best: each run's best validation epoch")] = At.final,
    tolerance: Annotated[float, typer.Option(
        help="LR sensitivity: how close to the best counts (metric units; 0.01 = 1 point)")
    ] = 0.01,
    target: Annotated[str | None, typer.Option(
        help="time-to-target from the history, e.g. val_acc=0.97 (default: the suite's)")
    ] = None,
    fmt: FormatOpt = Format.table,
    plots: PlotsOpt = None,
    section: Annotated[str | None, choice_option(
        Section, "section", "--section",
        help="all: every table and warning (the table's default is the first screen); "
             "--format csv: which table (best lrs, paired comparisons, expected best after k "
             "trials, their crossings, P(best); default best)")] = None,
    output: Annotated[Path | None, typer.Option(
        help="the file --format html writes (default DIR/report.html)")] = None,
    allow_contended: Annotated[bool, typer.Option(
        "--allow-contended", help="rank by time to target even runs that shared the machine")
    ] = False,
) -> None:
    """Best learning rate per model and optimizer: test metric, LR sensitivity, time, memory;
    paired comparisons, expected best after k trials and P(best)."""
    from cnnbench.render.report import write_report

    if fmt is Format.html and (output is not None or results_dir.is_dir()):
        check_output_file(output or results_dir / "report.html", "--output")
    result, runs, history = api.report(
        results_dir, metric=metric, at=at.value, by=parse_list(by, str, "--by", "columns"),
        tolerance=tolerance, target=_target(target), allow_contended=allow_contended)
    if allow_contended and not result.timing.known:
        from cnnbench.render.summary import allow_contended_moot

        err_console.print(f"note: {allow_contended_moot(results_dir)}", highlight=False)
    if fmt is Format.html:
        from cnnbench.render.html import write_html

        print_written([write_html(result, runs, history, output or results_dir / "report.html")])
    else:
        write_report(result, console, fmt.value, section=section.value if section else None)
    if plots is not None:
        from cnnbench.render.confidence_figures import write_confidence_figures
        from cnnbench.render.plots import write_figures

        print_written(write_figures(result, runs, history, plots))
        print_written(write_confidence_figures(result, plots))


@app.command()
def compare(
    dir_a: Annotated[Path, typer.Argument(help="results folder A (e.g. before, or CPU)")],
    dir_b: Annotated[Path, typer.Argument(help="results folder B (e.g. after, or GPU)")],
    metric: Annotated[str, typer.Option(help="accuracy or loss to compare")] = "test_acc",
    fmt: FormatOpt = Format.table,
    factor: Annotated[float, typer.Option(
        help="a time changed only beyond this ratio (and significant): 1.05 = 5%")] = 1.05,
    allow_contended: Annotated[bool, typer.Option(
        "--allow-contended", help="compare times even of runs that shared the machine")
    ] = False,
) -> None:
    """Two result sets side by side on their common runs: time and memory ratios, metric
    differences; a change is flagged only when significant (Welch), a time only when also
    beyond --factor."""
    from cnnbench.render.compare import write_compare

    table, notes = api.compare(dir_a, dir_b, metric, factor=factor,
                               allow_contended=allow_contended)
    for note in notes:
        err_console.print(f"note: {note}", highlight=False)
    write_compare(table, console, fmt.value, metric=metric, names=(str(dir_a), str(dir_b)))


@app.command("grad-norms")
def grad_norms(
    results_dir: ResultsArg,
    plot: Annotated[Path | None, typer.Option(
        help="also draw the norm against depth into this folder (grad_norms.png and .svg)")
    ] = None,
    epochs: Annotated[str | None, typer.Option(
        help="comma-separated epochs to draw (default: 0 and the last)")] = None,
    fmt: FormatOpt = Format.table,
) -> None:
    """Per-layer gradient norms (the grad_norms probe): first vs last layer, per run and epoch."""
    from cnnbench.render.report import write_grad_norms

    chosen = parse_list(epochs, int, "--epochs", "integers, e.g. 0,4")  # before any output
    summary, profile, chosen = api.grad_norms(results_dir, chosen)
    write_grad_norms(summary, console, fmt.value)
    if plot is not None:
        from cnnbench.render.plots import grad_norm_depth, save

        print_written(save(grad_norm_depth(profile, chosen), plot, "grad_norms"))


@app.command()
def compact(results_dir: ResultsArg) -> None:
    """Fold a results folder's parts into one file per table (safe while shards write)."""
    done = api.compact_results(results_dir)
    console.print(f"{results_dir}: {done.runs} run(s) in one file; {done.removed} file(s) "
                  "folded and removed", highlight=False, soft_wrap=True)


@app.command()
def upgrade(results_dir: ResultsArg) -> None:
    """Rewrite a results folder of an older schema version in the current layout, run by run."""
    count, version = api.upgrade_results(results_dir)
    console.print(f"{results_dir}: {count} run file(s) rewritten; the folder is at schema "
                  f"version {version}", highlight=False, soft_wrap=True)
