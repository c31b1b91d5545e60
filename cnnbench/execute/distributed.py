"""Data-parallel runs (`train.distributed`, `--nproc`): each run of the suite trains over several
processes at once (train/distributed.py), one run after another.

Two ways in. Where a launcher started this process as one of several ranks (`torchrun`, or
`srun` inside a Slurm allocation, `cnnbench submit` included), every rank runs `train_ranks`:
rank 0's list of runs still to do is every rank's, rank 0 writes the rows and checkpoints.
Where none did, `launch_ranks` starts the ranks on this machine with torch's elastic launcher
(what torchrun runs) and supervises them: a rank that dies ends the run in flight as `error`,
with the rank named, and a fresh launch goes on with the runs after it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
import traceback
from collections import Counter
from dataclasses import replace
from pathlib import Path

import torch

from cnnbench.errors import CnnbenchError
from cnnbench.execute.environment import environment
from cnnbench.execute.local import prepare_data
from cnnbench.execute.progress import PlainReporter
from cnnbench.results.schema import FAILED, RunOutcome, RunRow, Status
from cnnbench.results.store import ResultStore
from cnnbench.suite import RunSpec, Suite
from cnnbench.suite.distributed import batch_problem
from cnnbench.suite.schema import DistributedConfig
from cnnbench.train import engine, signals
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.devices import resolve_device, use_device
from cnnbench.train.distributed import (
    Launch,
    RankGroup,
    check_sync_bn,
    is_collective_failure,
    launched,
    rank_device,
    resolve_backend,
)

INFLIGHT = "distributed-inflight.txt"  # in logs/: the run rank 0 trains now (for the supervisor)
CAUSE_WAIT_S = 5.0  # how long rank 0 waits for a failing rank's traceback to reach the folder


class RunAborted(CnnbenchError):
    """A data-parallel run ended because a rank failed: the process group cannot go on."""


def world_size(suite: Suite) -> int:
    """How many processes each run of the suite trains on: the launcher's, else the suite's."""
    launch = launched()
    config = suite.train.distributed
    asked = config.world_size if config is not None else None
    if launch is None:
        return asked or 1
    if asked is not None and asked != launch.world_size:
        raise CnnbenchError(f"train.distributed.world_size is {asked} but {launch.launcher} "
                            f"started {launch.world_size} processes: make them agree (or drop "
                            "world_size to take the launcher's)")
    return launch.world_size


def check_runs(todo: list[RunSpec], world: int) -> None:
    """Every batch must split evenly over the ranks: said before anything starts."""
    for spec in todo:
        problem = batch_problem(spec.batch_size, world)
        if problem:
            raise CnnbenchError(f"run {spec.run_id} ({spec.model} {spec.optimizer}): {problem}")


# ─── in each rank ─────────────────────────────────────────────────────────────────────────────


class _QuietReporter(PlainReporter):
    """Ranks other than 0 train silently: rank 0 speaks for the run."""

    def log(self, text: str) -> None:
        pass


def train_ranks(suite: Suite, store: ResultStore, specs: list[RunSpec], todo: list[RunSpec], *,
                data_dir: str | None, reporter: PlainReporter, fail_fast: bool,
                supervised: bool = False) -> tuple[int, dict[str, int], str | None]:
    """This rank's part of training `todo` (rank 0's list), one data-parallel run after
    another; returns how many ran, their statuses and the stop signal's name. A failing run
    raises RunAborted once rank 0 wrote its row (`supervised`: the supervisor writes it)."""
    launch = launched()
    assert launch is not None, "train_ranks runs in a process a launcher started"
    config = suite.train.distributed or DistributedConfig()
    device = rank_device(suite.device, launch)
    use_device(device)
    if device.type == "cpu":  # the machine's cores shared out, as --workers does
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // launch.local_world_size))
    group = RankGroup(launch, device, backend=config.backend, sync_bn=config.sync_bn,
                      timeout_s=config.timeout_s)
    reporter = reporter if launch.is_main else _QuietReporter()
    ran, statuses, failed = 0, {}, False
    try:
        wanted = set(group.broadcast([s.run_id for s in todo]))
        todo = [s for s in specs if s.run_id in wanted]
        check_runs(todo, launch.world_size)
        data = prepare_data(suite.dataset_config, device, data_dir)
        env = environment(device)
        reporter.start(len(todo), len(specs) - len(todo))
        reporter.log(f"each run data-parallel over {launch.world_size} processes "
                     f"({group.backend}, started by {launch.launcher})")
        with signals.graceful_stop(reporter.log):
            for spec in todo:
                if group.any(bool(signals.stop_requested())) or (fail_fast and failed):
                    break
                ran += 1
                reporter.run_started(spec)
                outcome, history = _train_one(spec, data, store, group, reporter, supervised)
                if launch.is_main:
                    row = _write(store, spec, outcome, history, env, device, group)
                    reporter.run_finished(spec, row.record(), history)
                statuses[str(outcome.status)] = statuses.get(str(outcome.status), 0) + 1
                failed = failed or outcome.status in FAILED
            stopped = signals.stop_requested()
    finally:
        group.close()
        reporter.finish()
    return ran, statuses, stopped


def _train_one(spec: RunSpec, data, store: ResultStore, group: RankGroup,
               reporter: PlainReporter, supervised: bool) -> tuple[RunOutcome, list[dict]]:
    """Train one run on this rank. A rank's own error leaves its traceback in logs/; rank 0
    writes the run's `error` row naming the rank that failed (unless supervised) and every rank
    ends with RunAborted."""
    inflight = store.root / "logs" / INFLIGHT
    if group.is_main:
        inflight.parent.mkdir(parents=True, exist_ok=True)
        inflight.write_text(spec.run_id)
    try:
        result = engine.train(spec, data, on_epoch=lambda e, row: reporter.epoch(spec, e, row),
                              checkpoint=Checkpoint(store.checkpoint_path(spec.run_id),
                                                    spec.run_id),
                              log=reporter.log, group=group)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        own = not is_collective_failure(exc)
        if own:
            rank_log(store.root, spec.run_id, group.rank).write_text(traceback.format_exc())
        message = failure_message(store.root, spec.run_id, group.world_size,
                                  wait=CAUSE_WAIT_S if group.is_main else 0.0)
        if message is None and own:
            message = f"rank {group.rank}: {_first_line(exc)}"
        if group.is_main and (message is not None or not supervised):
            message = message or (f"another rank stopped answering ({_first_line(exc)}); the "
                                  "launcher's log says which and why")
            outcome = RunOutcome(Status.ERROR, message=message)
            # logs/INFLIGHT stays: a supervisor learns from it which run ended
            _write(store, spec, outcome, [], environment(group.device), group.device, group)
        raise RunAborted(f"run {spec.run_id} ended: {message or _first_line(exc)}") from None
    if group.is_main:
        inflight.unlink(missing_ok=True)
    if result.outcome.resumed_from_epoch:
        reporter.log(f"  resumed from the checkpoint of epoch {result.outcome.resumed_from_epoch}")
    return result.outcome, result.history


def rank_log(root: Path, run_id: str, rank: int) -> Path:
    path = root / "logs" / f"{run_id}.rank{rank}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def failure_message(root: Path, run_id: str, world: int, *, wait: float) -> str | None:
    """`rank R: <error> (traceback: …)` from the first rank whose traceback is in logs/ (waiting
    up to `wait` s for one), or None."""
    deadline = time.monotonic() + wait
    while True:
        for rank in range(world):
            path = root / "logs" / f"{run_id}.rank{rank}.log"
            if path.exists() and (text := path.read_text().strip()):
                return f"rank {rank}: {text.splitlines()[-1]} (traceback: {path})"
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def _row(spec: RunSpec, outcome: RunOutcome, env: dict, device: torch.device,
         group: RankGroup) -> RunRow:
    return RunRow(identity=spec.row(), hparams=outcome.optimizer_hparams or spec.hparams,
                  device=str(device), environment=env,
                  outcome=_with_world(outcome, group), batch_size=int(spec.batch_size),
                  execution="distributed")


def _with_world(outcome: RunOutcome, group: RankGroup) -> RunOutcome:
    if "world_size" in outcome.probes:
        return outcome
    return replace(outcome, probes={**outcome.probes, "world_size": group.world_size,
                                    "sync_bn": group.sync_bn})


def _write(store: ResultStore, spec: RunSpec, outcome: RunOutcome, history: list[dict],
           env: dict, device: torch.device, group: RankGroup) -> RunRow:
    """Write the run's row (its checkpoint goes, unless it was interrupted); the row."""
    row = _row(spec, outcome, env, device, group)
    store.write_row(row, history)
    if outcome.status is not Status.INTERRUPTED:
        Checkpoint(store.checkpoint_path(spec.run_id), spec.run_id).remove()
    return row


# ─── started here: torch's elastic launcher, supervised ─────────────────────────────────────


def _rank_entry(suite: Suite, out: str, specs: list[RunSpec], todo: list[RunSpec],
                data_dir: str | None, fail_fast: bool) -> None:
    """What each rank `launch_ranks` starts runs; a rank stopped by a signal exits at once
    (the launcher, shutting down, would otherwise wait for it to hand back a result)."""
    from cnnbench.execute.progress import PlainReporter

    _, _, stopped = train_ranks(suite, ResultStore(out), specs, todo, data_dir=data_dir,
                                reporter=PlainReporter(), fail_fast=fail_fast, supervised=True)
    if stopped:
        sys.stderr.flush()
        os._exit(signals.EXIT_INTERRUPTED)


def check_devices(suite: Suite, world: int) -> torch.device:
    """The device the ranks share out, checked before any rank starts."""
    device = resolve_device(suite.device)
    config = suite.train.distributed or DistributedConfig()
    resolve_backend(config.backend, device)
    if device.type == "cuda" and world > torch.cuda.device_count():
        raise CnnbenchError(f"world_size {world} asked for, but only {torch.cuda.device_count()} "
                            "CUDA device(s) are visible: one process per GPU; use "
                            f"world_size ≤ {torch.cuda.device_count()} (or torchrun / srun "
                            "across nodes)")
    check_sync_bn(config.sync_bn, device)
    return device


def launch_ranks(suite: Suite, store: ResultStore, specs: list[RunSpec], todo: list[RunSpec], *,
                 world: int, data_dir: str | None, reporter: PlainReporter,
                 fail_fast: bool) -> tuple[int, dict[str, int], str | None]:
    """Start `world` ranks on this machine for `todo` and wait; a rank that dies ends the run
    in flight as `error` (naming the rank) and the runs after it go on in a fresh launch."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    device = check_devices(suite, world)
    check_runs(todo, world)
    prepare_data(suite.dataset_config, torch.device("cpu"), data_dir)  # missing data: exit 2 now
    stopped, remaining = None, list(todo)
    reporter.log(f"starting {world} processes per run (torch.distributed elastic launch)")
    while remaining:
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=world,
                              rdzv_backend="c10d", rdzv_endpoint="127.0.0.1:0", max_restarts=0,
                              monitor_interval=0.1, run_id=f"cnnbench-{os.getpid()}")
        try:
            with _quiet_launcher():
                elastic_launch(config, _rank_entry)(suite, str(store.root), specs, remaining,
                                                    data_dir, fail_fast)
            break
        except ChildFailedError as exc:
            ended = _record_failure(store, remaining, exc, world, device)
            if ended is None:
                raise CnnbenchError(_failure_text(exc)) from None
            remaining = remaining[remaining.index(ended) + 1:]
            if fail_fast:
                break
        except Exception as exc:  # the launcher's own stop on SIGTERM/SIGINT: the ranks saw it
            if type(exc).__name__ != "SignalException":
                raise
            stopped = signal.Signals(exc.sigval).name
            break
    # what rank 0 wrote (and this process, for ranks that died) is what ran
    found = store.statuses()
    ended = [found[s.run_id] for s in todo if s.run_id in found]
    return len(ended), dict(Counter(ended)), stopped


def _record_failure(store: ResultStore, remaining: list[RunSpec], exc, world: int,
                    device: torch.device) -> RunSpec | None:
    """The run that was in flight when the ranks failed, its `error` row written (by rank 0, or
    here naming the rank that died); None when no run was in flight (a failure at start-up)."""
    inflight = store.root / "logs" / INFLIGHT
    run_id = inflight.read_text().strip() if inflight.exists() else None
    spec = next((s for s in remaining if s.run_id == run_id), None)
    if spec is None:
        return None
    inflight.unlink(missing_ok=True)
    if spec.run_id not in store.finished_ids():
        message = failure_message(store.root, spec.run_id, world, wait=0.0)
        if message is None:
            rank, failure = _root_cause(exc)
            message = f"rank {rank} died ({_how(failure)}) during the run"
        row = RunRow(identity=spec.row(), hparams=spec.hparams, device=str(device),
                     environment=environment(device),
                     outcome=RunOutcome(Status.ERROR, message=message,
                                        probes={"world_size": world}),
                     batch_size=int(spec.batch_size), execution="distributed")
        store.write_row(row, [])
    return spec


def _root_cause(exc):
    """The first rank that failed (by time), preferring one that is not rank 0: rank 0 fails
    second when a peer dies under it."""
    failures = exc.failures
    others = {r: f for r, f in failures.items() if r != 0}
    pool = others or failures
    rank = min(pool, key=lambda r: pool[r].timestamp)
    return rank, pool[rank]


def _how(failure) -> str:
    signal = failure.signal_name()
    return f"signal {signal}" if signal and signal != "<N/A>" else f"exit code {failure.exitcode}"


def _failure_text(exc) -> str:
    """What the ranks said when they failed before any run started (bad input, mostly)."""
    rank, failure = _root_cause(exc)
    message = failure.message
    if isinstance(message, dict):
        message = message.get("message", "")
    text = str(message).strip().splitlines()
    return text[-1] if text else f"rank {rank} failed ({_how(failure)}) before any run started"


@contextlib.contextmanager
def _quiet_launcher():
    """The launcher logs each failure as a page of errors; the row and our one line say it."""
    import torch.distributed.elastic.agent.server.api  # noqa: F401  (its loggers exist now)

    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name.startswith("torch.distributed.elastic")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def run_distributed(suite: Suite, store: ResultStore, specs: list[RunSpec],
                    todo: list[RunSpec], *, data_dir: str | None, reporter: PlainReporter,
                    fail_fast: bool) -> tuple[int, dict[str, int], str | None]:
    """Train `todo` data-parallel: as one rank where a launcher started this process, else by
    starting the ranks here."""
    launch: Launch | None = launched()
    if launch is not None:
        world_size(suite)  # the suite and the launcher agree
        return train_ranks(suite, store, specs, todo, data_dir=data_dir, reporter=reporter,
                           fail_fast=fail_fast)
    return launch_ranks(suite, store, specs, todo, world=world_size(suite), data_dir=data_dir,
                        reporter=reporter, fail_fast=fail_fast)
