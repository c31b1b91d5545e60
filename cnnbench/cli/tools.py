"""Commands beside the suites: list the registries, profile a model, draw optimizer
trajectories."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnbench import api
from cnnbench.cli.app import app
from cnnbench.cli.options import (
    DataDirOpt,
    ListFormat,
    ListFormatOpt,
    Listing,
    Precision,
    choice_argument,
    choice_option,
    console,
    err_console,
    parse_list,
)
from cnnbench.errors import CnnbenchError


@app.command("list")
def list_(
    what: Annotated[str, choice_argument(Listing, "listing")],
    dataset: Annotated[str | None, typer.Option(
        help="models: also show parameters and FLOPs at this dataset's input")] = None,
    input_: Annotated[str | None, typer.Option(
        "--input", help="models: also show them at this CxHxW input, e.g. 3x32x32")] = None,
    classes: Annotated[int | None, typer.Option(
        help="models: class count with --input (default 10) or --dataset (its own)")] = None,
    family: Annotated[str | None, typer.Option(help="models: only this family")] = None,
    fmt: ListFormatOpt = ListFormat.table,
) -> None:
    """List the packaged suites, or the registered models, optimizers or datasets, with their
    key facts."""
    from cnnbench.render.records import write_rows

    if what is Listing.suites:
        from cnnbench.render.tables import suites_table

        rows = api.suites()
        write_rows(rows, console, fmt.value, lambda: suites_table(rows))
        return
    from cnnbench.render import listing

    if what is not Listing.models:
        rows = listing.optimizer_rows() if what is Listing.optimizers else listing.dataset_rows()
        table = listing.optimizers_table if what is Listing.optimizers else listing.datasets_table
        write_rows(rows, console, fmt.value, lambda: table(rows))
        return
    extra = listing.extra_input(dataset=dataset, input_text=input_, classes=classes)
    with err_console.status("counting parameters and FLOPs (cached after the first time)…"):
        rows = listing.model_rows(input_shape=extra.get("input_shape"),
                                  num_classes=extra.get("num_classes", 10), family=family)
    write_rows(rows, console, fmt.value, lambda: listing.models_table(rows, **extra))


@app.command()
def init(name: Annotated[str, typer.Argument(help="the suite's name; writes NAME.yaml")
                         ] = "my_suite") -> None:
    """Write a commented starter suite NAME.yaml into the current folder (never overwrites)."""
    path = api.init(name)
    err_console.print(f"wrote {path}; next: cnnbench plan {path}", highlight=False)


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
    precision: Annotated[str, choice_option(
        Precision, "precision", "--precision",
        help="fp32 | bf16 | fp16 (autocast) | fp64")] = Precision.fp32,
    channels_last: Annotated[bool | None, typer.Option(
        "--channels-last/--no-channels-last",
        help="NHWC layout (default: as a run has it, on for conv nets on CUDA)")] = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model")] = False,
    graphs: Annotated[bool, typer.Option(
        "--graphs", help="CUDA only: capture the training step as a CUDA graph and replay it")
    ] = False,
    warmup: Annotated[int, typer.Option(min=0, help="untimed steps per phase")] = 5,
    repeats: Annotated[int, typer.Option(min=1, help="timed steps per phase")] = 20,
    out: Annotated[Path | None, typer.Option(help="also write the rows (.parquet or .csv)")
                   ] = None,
    data_dir: DataDirOpt = None,
) -> None:
    """Inference and training speed of one model on synthetic data, per batch size."""
    from cnnbench.tools.profile import profile_table, write_rows

    sizes = parse_list(batch_sizes, int, "--batch-sizes", "integers, e.g. 32,64,128")
    if not sizes or min(sizes) < 1:
        raise CnnbenchError(f"--batch-sizes {batch_sizes!r}: give positive integers, e.g. "
                            "32,64,128")
    if out is not None and out.suffix not in (".parquet", ".csv"):
        raise CnnbenchError(f"--out {str(out)!r}: name a .parquet or .csv file")
    rows = api.profile(model, dataset=dataset, input=input, classes=classes, data_dir=data_dir,
                       device=device, batch_sizes=sizes, precision=precision.value,
                       channels_last=channels_last, compile=compile, graphs=graphs,
                       warmup=warmup,
                       repeats=repeats)
    console.print(profile_table(rows))
    if out is not None:
        write_rows(rows, out)


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
    from cnnbench.render.tables import trajectories_table
    from cnnbench.tools.trajectories import draw_trajectories

    names = parse_list(optimizers, str, "--optimizers", "optimizer names, e.g. sgd,adam")
    rows, written = draw_trajectories(function, names or None, lr=lr, steps=steps, out=out,
                                      gif=gif)
    console.print(trajectories_table(function, rows))
    err_console.print(f"wrote {written}")


@app.command("lr-find")
def lr_find(
    model: Annotated[str, typer.Argument(help="a registered model or module:callable")],
    dataset: Annotated[str, typer.Option(help="the dataset to train on")] = "mnist-mini",
    optimizer: Annotated[str, typer.Option(help="a registered optimizer")] = "sgd",
    lr_min: Annotated[float, typer.Option(help="first lr (> 0)")] = 1e-6,
    lr_max: Annotated[float, typer.Option(help="last lr")] = 10.0,
    steps: Annotated[int, typer.Option(min=2, help="steps, the lr growing each")] = 100,
    batch_size: Annotated[int, typer.Option(min=1)] = 128,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    out: Annotated[Path, typer.Option(help="the figure")] = Path("lr_find.png"),
    data_dir: DataDirOpt = None,
) -> None:
    """The lr range test (Smith 2017): one short run, lr growing geometrically per step; the
    loss-vs-lr figure and a suggested start grid for an lr search."""
    if not 0 < lr_min < lr_max:
        raise CnnbenchError(f"--lr-min {lr_min:g} must be positive and below --lr-max {lr_max:g}")
    test, written = api.lr_find(model, dataset=dataset, optimizer=optimizer, device=device,
                                data_dir=data_dir, out=out, lr_min=lr_min, lr_max=lr_max,
                                steps=steps, batch_size=batch_size)
    low, high, num = test.start_grid
    end = "the loss diverged there" if test.stopped_early else "lr_max reached"
    console.print(f"{len(test.lrs)} steps from {test.lrs[0]:.3g} to {test.lrs[-1]:.3g} "
                  f"({end}); lowest smoothed loss {min(test.smoothed):.4g} at lr "
                  f"{test.min_loss_lr:.3g}\nsuggested start grid:\n"
                  f"  lr: {{search: {{log: [{_yaml_float(low)}, {_yaml_float(high)}], "
                  f"num: {num}}}}}",
                  highlight=False)
    err_console.print(f"wrote {written}")


def _yaml_float(value: float) -> str:
    """3 significant digits that YAML reads as a float (it reads `1e+03` as a string)."""
    text = f"{value:.3g}"
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if e else text
