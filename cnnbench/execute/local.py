"""Run a list of runs one after another in this process, on one device: the data loaded once,
each run trained, its row written. One failing run never stops the list; a stop signal ends
it after the current step."""

from __future__ import annotations

import gc
import json
import traceback

import torch

from cnnbench.data import DeviceData, load_dataset, resolve_augment
from cnnbench.errors import CnnbenchError
from cnnbench.execute.environment import environment
from cnnbench.execute.grouping import (
    Execution,
    captured,
    ensemble_limit,
    plan_groups,
    resolve_execution,
    run_group,
)
from cnnbench.execute.progress import PlainReporter
from cnnbench.models import create_model
from cnnbench.results.files import WriteError
from cnnbench.results.schema import FAILED, RunOutcome, RunRow, Status
from cnnbench.results.store import ResultStore
from cnnbench.suite import DatasetConfig, RunSpec, Suite
from cnnbench.train import engine, signals
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.devices import resolve_device, use_device


def prepare_data(config: DatasetConfig, device, data_dir: str | None = None) -> DeviceData:
    arrays = load_dataset(config, data_dir)
    return DeviceData(arrays, device, val_size=config.val_size, val_fraction=config.val_fraction,
                      subset=config.subset, test_subset=config.test_subset,
                      augment=resolve_augment(config.augment, config.name))


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


def run_sequential(suite: Suite, store: ResultStore, todo: list[RunSpec], *, device: str | None,
                   data_dir: str | None, reporter: PlainReporter, fail_fast: bool,
                   skipped: int, execution: Execution | None = None,
                   ensemble_max: int | None = None) -> tuple[int, dict[str, int], str | None]:
    """Train `todo` in order, one by one or (`execution`, default the suite's) in ensembles of
    up to `ensemble_max` runs; returns how many ran, their statuses and the stop signal's name
    (None when the list ran to its end or stopped for --fail-fast)."""
    device = resolve_device(device or suite.device)
    use_device(device)  # a worker's (or `cuda:1`'s) GPU, before anything touches CUDA
    data = prepare_data(suite.dataset_config, device, data_dir)
    preflight(todo, data)
    env = environment(device)
    ensemble = resolve_execution(execution or suite.execution, device) == "ensemble"
    limit = ensemble_limit(ensemble_max, device)
    groups = plan_groups(todo, max_size=limit) if ensemble else [[s] for s in todo]
    reporter.start(len(todo), skipped)
    ran, statuses, failed = 0, {}, []

    def write(spec: RunSpec, outcome: RunOutcome, history: list[dict], size: int) -> None:
        row = RunRow(identity=spec.row(), hparams=outcome.optimizer_hparams or spec.hparams,
                     device=str(device), environment=env, outcome=outcome,
                     batch_size=len(data.train) if spec.batch_size == "full"
                     else spec.batch_size, execution="ensemble" if size > 1 else "sequential",
                     ensemble_size=size)
        store.write_row(row, history)
        if row.status is not Status.INTERRUPTED:
            Checkpoint(store.checkpoint_path(spec.run_id), spec.run_id).remove()
        statuses[str(row.status)] = statuses.get(str(row.status), 0) + 1
        reporter.run_finished(spec, row.record(), history)
        if row.status in FAILED:
            failed.append(f"{row.status} of {spec.run_id}")

    def run_one(spec: RunSpec) -> tuple[RunOutcome, list[dict]]:
        return _run_one(spec, data, store, reporter)

    try:
        with signals.graceful_stop(reporter.log):
            for group in groups:
                if signals.stop_requested():
                    break
                ran += len(group)
                for spec in group:
                    reporter.run_started(spec)
                if len(group) == 1 and not captured(group[0]):
                    write(group[0], *run_one(group[0]), 1)
                else:
                    run_group(group, data, run_one=run_one, on_done=write,
                              checkpoint=lambda run_id: Checkpoint(store.checkpoint_path(run_id),
                                                                   run_id),
                              on_epoch=reporter.epoch, log=reporter.log, max_size=limit)
                if fail_fast and failed:
                    reporter.log(f"--fail-fast: stopping after {failed[0]}")
                    break
            stopped = signals.stop_requested()
    finally:
        reporter.finish()
    return ran, statuses, stopped


def _run_one(spec: RunSpec, data: DeviceData, store: ResultStore,
             reporter) -> tuple[RunOutcome, list[dict]]:
    """Train one run; an exception becomes an `error` (or `oom`) outcome whose traceback goes to
    logs/."""
    try:
        result = engine.train(spec, data,
                              on_epoch=lambda epoch, row: reporter.epoch(spec, epoch, row),
                              checkpoint=Checkpoint(store.checkpoint_path(spec.run_id),
                                                    spec.run_id), log=reporter.log)
        if result.outcome.resumed_from_epoch:
            reporter.log(f"  resumed from the checkpoint of epoch "
                         f"{result.outcome.resumed_from_epoch}")
        return result.outcome, result.history
    except (KeyboardInterrupt, SystemExit, WriteError):
        raise
    except Exception as exc:  # a failing run is a result, not a crash
        oom = isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        first_line = (str(exc).splitlines() or [""])[0]
        message = first_line if isinstance(exc, CnnbenchError) else (
            f"{type(exc).__name__}: {first_line}")
        trace = traceback.format_exc()
    log = store.root / "logs" / f"{spec.run_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(trace)
    _release_memory(data.device)
    return RunOutcome(Status.OOM if oom else Status.ERROR,
                      message=f"{message} (traceback: {log})"), []


def _release_memory(device: torch.device) -> None:
    """After an OOM or error, give back what the failed run held before the next one starts."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
