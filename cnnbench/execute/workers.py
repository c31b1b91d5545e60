"""Local workers: N spawned processes share a suite's runs (one GPU each, or a share of the CPU
threads); stop signals are forwarded to them."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import torch

from cnnbench.execute.local import run_sequential
from cnnbench.execute.progress import PlainReporter
from cnnbench.results.schema import SuiteOutcome
from cnnbench.results.store import ResultStore
from cnnbench.suite import RunSpec, Suite
from cnnbench.train import signals
from cnnbench.train.devices import resolve_device, spreads_over_gpus, worker_devices


class _WorkerReporter(PlainReporter):
    """Plain lines prefixed with the worker's number."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.prefix = f"w{index}"

    def log(self, text: str) -> None:
        super().log(f"{self.prefix} {text}")


def _worker(index: int, suite: Suite, out: Path, specs: list[RunSpec], device: str,
            threads: int | None, data_dir: str | None, fail_fast: bool,
            ensemble_max: int | None) -> None:
    """One worker process: run its share sequentially (`--rerun` already decided by the parent)."""
    if threads:
        torch.set_num_threads(threads)
    _, _, stopped = run_sequential(suite, ResultStore(out), specs, device=device,
                                   data_dir=data_dir, reporter=_WorkerReporter(index),
                                   fail_fast=fail_fast, skipped=0, ensemble_max=ensemble_max)
    raise SystemExit(signals.EXIT_INTERRUPTED if stopped else 0)


def run_workers(suite: Suite, out: Path, specs: list[RunSpec], todo: list[RunSpec], *,
                 workers: int, data_dir: str | None, reporter: PlainReporter,
                 fail_fast: bool, ensemble_max: int | None) -> SuiteOutcome:
    """Split `todo` round-robin over `workers` spawned processes (one GPU each on CUDA, round-
    robin; on CPU the torch threads split between them) and wait; signals are forwarded. Each
    worker trains its share in ensembles of up to `ensemble_max` where the suite asks for them."""
    device = resolve_device(suite.device)
    workers = min(workers, len(todo))
    devices, shared = worker_devices(
        workers, device, torch.cuda.device_count() if device.type == "cuda" else 0,
        spread=spreads_over_gpus(suite.device))
    threads = max(1, torch.get_num_threads() // workers) if device.type == "cpu" else None
    reporter.start(len(todo), len(specs) - len(todo))
    reporter.log(f"{workers} worker processes" + (f", {threads} torch thread(s) each"
                                                  if threads else f" on {', '.join(devices)}"))
    if shared:
        reporter.log(f"warning: {shared}")
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_worker, name=f"cnnbench-w{i + 1}",
                             args=(i + 1, suite, out, todo[i::workers], devices[i], threads,
                                   data_dir, fail_fast, ensemble_max))
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
