"""Run a suite's runs: the local, sequential executor. One failing run never stops the suite."""

from __future__ import annotations

import gc
import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnbench import engine
from cnnbench.data import DeviceData, load_dataset, resolve_augment
from cnnbench.env import environment, resolve_device
from cnnbench.errors import CnnbenchError
from cnnbench.models import create_model
from cnnbench.progress import PlainReporter
from cnnbench.store import ResultStore
from cnnbench.suite import DatasetConfig, RunSpec, Suite, expand

OK_STATUSES = {"ok", "diverged"}  # a diverged run is a finding about its lr, not a failure


@dataclass(frozen=True)
class SuiteOutcome:
    out: Path
    ran: int
    skipped: int
    statuses: dict[str, int]

    @property
    def succeeded(self) -> bool:
        """Every run ended ok or diverged."""
        return set(self.statuses) <= OK_STATUSES


def identity_row(spec: RunSpec) -> dict[str, Any]:
    """The columns that say which run a row is."""
    return {
        "suite": spec.suite, "run_id": spec.run_id, "model": spec.model,
        "model_kwargs": json.dumps(spec.model_kwargs, sort_keys=True),
        "optimizer": spec.optimizer, "optimizer_name": spec.optimizer_name, "lr": spec.lr,
        "seed": spec.seed, "batch": str(spec.batch_size), "dataset": spec.dataset["name"],
        "requested_device": spec.device, "epochs": spec.train["epochs"],
        "schedule": json.dumps(spec.train["schedule"], sort_keys=True),
    }


def hparam_columns(hparams: dict[str, Any]) -> dict[str, Any]:
    """`hparams` as one JSON column and one `hp_<key>` column per hyper-parameter."""
    return {
        "hparams": json.dumps(hparams, sort_keys=True, default=str),
        **{f"hp_{k}": v if isinstance(v, (int, float, str, bool)) else json.dumps(v, default=str)
           for k, v in hparams.items() if k != "lr" and v is not None},
    }


def prepare_data(config: DatasetConfig, device, data_dir: str | None = None) -> DeviceData:
    arrays = load_dataset(config, data_dir)
    return DeviceData(arrays, device, val_size=config.val_size, val_fraction=config.val_fraction,
                      subset=config.subset, augment=resolve_augment(config.augment, config.name))


def preflight(specs: list[RunSpec], data: DeviceData) -> None:
    """Build each distinct model once on CPU, so a broken user model fails before any run."""
    channels, size, _ = data.shape
    seen = set()
    for spec in specs:
        key = (spec.model, json.dumps(spec.model_kwargs, sort_keys=True))
        if key not in seen:
            seen.add(key)
            create_model(spec.model, in_channels=channels, num_classes=data.num_classes,
                         image_size=size, **spec.model_kwargs)


def run_suite(suite: Suite, out: str | Path | None = None, *, rerun: bool = False,
              data_dir: str | None = None, reporter: PlainReporter | None = None,
              specs: list[RunSpec] | None = None, fail_fast: bool = False) -> SuiteOutcome:
    """Run every run of the suite (or `specs`) not already in `out`; write one file per run.

    With `fail_fast`, stop after the first run that ends in error, oom or timeout."""
    out = Path(out) if out is not None else Path("results") / suite.name
    specs = expand(suite) if specs is None else specs
    device = resolve_device(suite.device)
    store = ResultStore(out)
    store.prepare()
    done = {} if rerun else store.finished_ids()
    todo = [s for s in specs if s.run_id not in done]
    reporter = reporter or PlainReporter()
    statuses: dict[str, int] = {}
    for spec in specs:
        if spec.run_id in done:
            statuses[done[spec.run_id]] = statuses.get(done[spec.run_id], 0) + 1
    if not todo:
        reporter.start(0, len(specs) - len(todo))
        reporter.finish()
        return SuiteOutcome(out, 0, len(specs), statuses)
    data = prepare_data(suite.dataset_config, device, data_dir)
    preflight(todo, data)
    env = environment(device)
    reporter.start(len(todo), len(specs) - len(todo))
    try:
        for spec in todo:
            reporter.run_started(spec)
            summary, history = _run_one(spec, data, store, reporter)
            hparams = summary.pop("optimizer_hparams", spec.hparams)
            row = {**identity_row(spec), **hparam_columns(hparams), "device": str(device), **env,
                   **summary,
                   "batch_size": len(data.train) if spec.batch_size == "full" else spec.batch_size}
            store.write(row, history)
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
            reporter.run_finished(spec, row)
            if fail_fast and row["status"] not in OK_STATUSES:
                reporter.log(f"--fail-fast: stopping after {row['status']} of {spec.run_id}")
                break
    finally:
        reporter.finish()
    return SuiteOutcome(out, len(todo), len(specs) - len(todo), statuses)


def _run_one(spec: RunSpec, data: DeviceData, store: ResultStore, reporter) -> tuple[dict, list]:
    """Train one run; an exception becomes an `error` row whose traceback goes to logs/."""
    try:
        result = engine.train(spec, data,
                              on_epoch=lambda epoch, row: reporter.epoch(spec, epoch, row))
        return result.summary, result.history
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # a failing run is a result, not a crash
        oom = isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        status = "oom" if oom else "error"
        first_line = (str(exc).splitlines() or [""])[0]
        message = first_line if isinstance(exc, CnnbenchError) else (
            f"{type(exc).__name__}: {first_line}")
        trace = traceback.format_exc()
    log = store.root / "logs" / f"{spec.run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(trace)
    _release_memory(data.device)
    return {"status": status, "message": f"{message} (traceback: {log})"}, []


def _release_memory(device: torch.device) -> None:
    """After an OOM or error, give back what the failed run held before the next one starts."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
