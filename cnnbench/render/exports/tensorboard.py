"""Runs into TensorBoard event files: one folder per run (`LOGDIR/<run_id>`) with the history as
scalars at their step, the final metrics and probes as `final/<metric>` scalars, and the HParams
plugin's summaries (the hyper-parameters, and `final/*` as its metrics) so that TensorBoard's
HParams tab compares runs. Written with torch's own SummaryWriter; needs the `[tensorboard]`
extra. Exporting again replaces each run's folder: nothing is duplicated."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from cnnbench.render.exports import require
from cnnbench.render.exports.records import RunRecord, records

DISCRETE_LIMIT = 50  # string hyper-parameters with up to this many values get a domain (filters)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN: not a usable number


def hparam_values(recs: list[RunRecord]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Each run's params typed the same way in every run (a number where every run has one),
    and the discrete domains of the string ones."""
    keys = sorted({k for rec in recs for k in rec.params})
    numeric = {k for k in keys if all(_number(rec.params[k]) is not None
                                       for rec in recs if k in rec.params)}
    values = [{k: (_number(v) if k in numeric else v) for k, v in rec.params.items()}
              for rec in recs]
    domains = {k: sorted({rec.params[k] for rec in recs if k in rec.params})
               for k in keys if k not in numeric}
    return values, {k: d for k, d in domains.items() if len(d) <= DISCRETE_LIMIT}


def export_tensorboard(logdir: str | Path, runs: pd.DataFrame, history: pd.DataFrame
                       ) -> list[Path]:
    """Write one event-file folder per run under `logdir`; returns the folders."""
    require("tensorboard", "tensorboard", "TensorBoard export")
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    recs = records(runs, history)
    values, domains = hparam_values(recs)
    # one experiment for all: every hyper-parameter and final metric any run has
    union = {k: v for run in reversed(values) for k, v in run.items()}
    metric_names = sorted({f"final/{k}" for rec in recs for k in rec.metrics})
    experiment, _, _ = hparams(union, dict.fromkeys(metric_names, 0.0), domains)
    folders = []
    for rec, hp in zip(recs, values, strict=True):
        _, start, end = hparams(hp, {}, {k: d for k, d in domains.items() if k in hp})
        target = logdir / rec.run_id
        staging = Path(tempfile.mkdtemp(dir=logdir, prefix=f".{rec.run_id}."))
        with SummaryWriter(log_dir=str(staging)) as writer:
            for summary in (experiment, start, end):
                writer.file_writer.add_summary(summary)
            for key, value, step in rec.points:
                writer.add_scalar(key, value, step)
            for key, value in rec.metrics.items():
                writer.add_scalar(f"final/{key}", value, rec.last_step)
            writer.add_text("run", f"{rec.name} [{rec.run_id}]: {rec.status}", rec.last_step)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        folders.append(target)
    return folders
