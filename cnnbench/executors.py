"""Run a suite's runs: sequentially, as one shard K/N of them, or in N local worker processes.
One failing run never stops the suite; a stop signal ends it after the current step."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cnnbench import engine, signals
from cnnbench.checkpoint import Checkpoint
from cnnbench.data import DeviceData, load_dataset, resolve_augment
from cnnbench.env import environment, resolve_device
from cnnbench.errors import CnnbenchError
from cnnbench.models import create_model
from cnnbench.progress import PlainReporter
from cnnbench.store import FAILED_STATUSES, ResultStore, WriteError
from cnnbench.suite import DatasetConfig, RunSpec, Suite, expand

OK_STATUSES = {"ok", "diverged"}  # a diverged run is a finding about its lr, not a failure


@dataclass(frozen=True)
class SuiteOutcome:
    out: Path
    ran: int
    skipped: int
    statuses: dict[str, int]
    interrupted: bool = False  # a stop signal ended the suite early

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


def run_suite(suite: Suite, out: str | Path | None = None, *, rerun: bool = False,
              rerun_failed: bool = False, data_dir: str | None = None,
              reporter: PlainReporter | None = None, specs: list[RunSpec] | None = None,
              fail_fast: bool = False, workers: int = 1,
              device: str | None = None) -> SuiteOutcome:
    """Run every run of the suite (or `specs`) not already in `out`; write one file per run.

    An unfinished run resumes from its last per-epoch checkpoint. With `rerun_failed`, runs that
    ended in error, oom or timeout run again; with `fail_fast`, the suite stops after the first
    such run; with `workers` > 1, that many processes share the runs; `device` overrides the
    suite's device without changing run_ids (used to give each worker its own GPU)."""
    out = Path(out) if out is not None else Path("results") / suite.name
    specs = expand(suite) if specs is None else specs
    store = ResultStore(out)
    store.prepare()
    done = {} if rerun else store.finished_ids()
    if rerun_failed:
        done = {k: v for k, v in done.items() if v not in FAILED_STATUSES}
    todo = [s for s in specs if s.run_id not in done]
    reporter = reporter or PlainReporter()
    if workers > 1 and len(todo) > 1:
        return _run_workers(suite, out, specs, todo, workers=workers, data_dir=data_dir,
                            reporter=reporter, fail_fast=fail_fast)
    device = resolve_device(device or suite.device)
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
    ran = 0
    try:
        with signals.graceful_stop(reporter.log):
            for spec in todo:
                if signals.stop_requested():
                    break
                ran += 1
                reporter.run_started(spec)
                summary, history = _run_one(spec, data, store, reporter)
                hparams = summary.pop("optimizer_hparams", spec.hparams)
                row = {**identity_row(spec), **hparam_columns(hparams), "device": str(device),
                       **env, **summary, "batch_size": len(data.train)
                       if spec.batch_size == "full" else spec.batch_size}
                store.write(row, history)
                if row["status"] != "interrupted":
                    Checkpoint(store.checkpoint_path(spec.run_id), spec.run_id).remove()
                statuses[row["status"]] = statuses.get(row["status"], 0) + 1
                reporter.run_finished(spec, row)
                if fail_fast and row["status"] not in OK_STATUSES | {"interrupted"}:
                    reporter.log(f"--fail-fast: stopping after {row['status']} of {spec.run_id}")
                    break
            stopped = signals.stop_requested()
    finally:
        reporter.finish()
    if stopped:
        reporter.log(f"{stopped}: stopped with {len(todo) - ran} run(s) not started; re-run the "
                     "same command to resume")
    return SuiteOutcome(out, ran, len(specs) - len(todo), statuses, interrupted=bool(stopped))


def _run_one(spec: RunSpec, data: DeviceData, store: ResultStore, reporter) -> tuple[dict, list]:
    """Train one run; an exception becomes an `error` row whose traceback goes to logs/."""
    try:
        result = engine.train(spec, data,
                              on_epoch=lambda epoch, row: reporter.epoch(spec, epoch, row),
                              checkpoint=Checkpoint(store.checkpoint_path(spec.run_id),
                                                    spec.run_id))
        if result.summary.get("resumed_from_epoch"):
            reporter.log(f"  resumed from the checkpoint of epoch "
                         f"{result.summary['resumed_from_epoch']}")
        return result.summary, result.history
    except (KeyboardInterrupt, SystemExit, WriteError):
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


# ─── Shards: a pure, stable share of the sorted runs ───────────────────────────────────────────


def parse_shard(text: str) -> tuple[int, int]:
    """`"K/N"` → (K, N), K counted from 1 like Playwright's and Jest's `--shard`."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise CnnbenchError(f"--shard {text!r} is not K/N with 1 ≤ K ≤ N (e.g. --shard 2/8)")
    return int(match[1]), int(match[2])


def shard_from_env(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(K, N) of the Slurm array task we run in, or None outside a job array.

    K counts the task's place in the array from 1: (id - min) / step + 1; N is the task count."""
    environ = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in environ or "SLURM_ARRAY_TASK_COUNT" not in environ:
        return None
    task, count = int(environ["SLURM_ARRAY_TASK_ID"]), int(environ["SLURM_ARRAY_TASK_COUNT"])
    first = int(environ.get("SLURM_ARRAY_TASK_MIN", 0))
    step = int(environ.get("SLURM_ARRAY_TASK_STEP", 1)) or 1
    return (task - first) // step + 1, count


def shard(specs: list[RunSpec], k: int, n: int) -> list[RunSpec]:
    """Shard K of N: every N-th run of the sorted list, starting at the K-th.

    Round-robin over runs sorted by (model, optimizer, lr, batch, seed) spreads each model and
    optimizer over all shards, so shards get near-equal work without a cost model; it depends
    only on the run_ids, so every task of an array computes the same split."""
    ordered = sorted(specs, key=lambda s: (s.model, s.optimizer, s.lr, str(s.batch_size),
                                           s.seed, s.run_id))
    return ordered[k - 1::n]


# ─── Local workers: N processes share the runs ─────────────────────────────────────────────────


class _WorkerReporter(PlainReporter):
    """Plain lines prefixed with the worker's number."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"w{index}"

    def log(self, text: str) -> None:
        super().log(f"{self.prefix} {text}")


def _worker(index: int, suite: Suite, out: Path, specs: list[RunSpec], device: str,
            threads: int | None, data_dir: str | None, fail_fast: bool) -> None:
    """One worker process: run its share sequentially (`--rerun` already decided by the parent)."""
    if threads:
        torch.set_num_threads(threads)
    outcome = run_suite(suite, out, rerun=True, data_dir=data_dir, specs=specs,
                        reporter=_WorkerReporter(index), fail_fast=fail_fast, device=device)
    raise SystemExit(signals.EXIT_INTERRUPTED if outcome.interrupted else 0)


def _run_workers(suite: Suite, out: Path, specs: list[RunSpec], todo: list[RunSpec], *,
                 workers: int, data_dir: str | None, reporter: PlainReporter,
                 fail_fast: bool) -> SuiteOutcome:
    """Split `todo` round-robin over `workers` spawned processes (one GPU each on CUDA, round-
    robin; on CPU the torch threads split between them) and wait; signals are forwarded."""
    device = resolve_device(suite.device)
    workers = min(workers, len(todo))
    if device.type == "cuda" and device.index is None:
        devices = [f"cuda:{i % torch.cuda.device_count()}" for i in range(workers)]
    else:
        devices = [str(device)] * workers
    threads = max(1, torch.get_num_threads() // workers) if device.type == "cpu" else None
    reporter.start(len(todo), len(specs) - len(todo))
    reporter.log(f"{workers} worker processes" + (f", {threads} torch thread(s) each"
                                                  if threads else f" on {', '.join(devices)}"))
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, name=f"cnnbench-w{i + 1}",
                             args=(i + 1, suite, out, todo[i::workers], devices[i], threads,
                                   data_dir, fail_fast))
             for i in range(workers)]
    forwarded = False
    try:
        with signals.graceful_stop(reporter.log):
            for proc in procs:
                proc.start()
            while alive := [proc for proc in procs if proc.is_alive()]:
                if signals.stop_requested() and not forwarded:
                    forwarded = True
                    for proc in alive:
                        proc.terminate()  # SIGTERM: each worker stops after its current step
                alive[0].join(0.2)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        reporter.finish()
    wanted = {s.run_id for s in specs}
    statuses: dict[str, int] = {}
    for run_id, status in ResultStore(out).statuses().items():
        if run_id in wanted:
            statuses[status] = statuses.get(status, 0) + 1
    unfinished = [p.name for p in procs if p.exitcode not in (0, signals.EXIT_INTERRUPTED)]
    if unfinished:
        reporter.log(f"worker(s) {', '.join(unfinished)} died; re-run to complete the suite")
    interrupted = forwarded or any(p.exitcode == signals.EXIT_INTERRUPTED for p in procs)
    return SuiteOutcome(out, len(todo), len(specs) - len(todo), statuses,
                        interrupted=interrupted)
