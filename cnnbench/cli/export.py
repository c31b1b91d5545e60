"""`cnnbench export`: a results folder into the trackers people already use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cnnbench import api
from cnnbench.cli.app import app
from cnnbench.cli.options import ResultsArg, err_console


@app.command()
def export(
    results_dir: ResultsArg,
    mlflow: Annotated[str | None, typer.Option(
        help="an MLflow tracking URI, e.g. sqlite:///mlflow.db or http://localhost:5000")
    ] = None,
    tensorboard: Annotated[Path | None, typer.Option(
        help="a TensorBoard log folder: one sub-folder per run")] = None,
    suite: Annotated[Path | None, typer.Option(
        help="the suite file to attach to the MLflow suite run (default: DIR/suite.yaml)")
    ] = None,
    figures: Annotated[bool, typer.Option(
        help="attach the report's figures to the MLflow suite run")] = True,
) -> None:
    """Export runs to MLflow (one parent run per suite, a child per run; again: nothing new)
    and/or TensorBoard (scalars and the HParams tab)."""
    done = api.export(results_dir, mlflow=mlflow, tensorboard=tensorboard, suite_file=suite,
                      figures=figures)
    if done.mlflow is not None:
        c = done.mlflow
        err_console.print(f"MLflow {mlflow}: {c.created} run(s) created, {c.filled} completed, "
                          f"{c.unchanged} already there", highlight=False)
    if tensorboard is not None:
        err_console.print(f"TensorBoard {tensorboard}: {len(done.tensorboard)} run folder(s); "
                          f"view with: tensorboard --logdir {tensorboard}", highlight=False)
