"""Which runs train together as one vectorized ensemble (train/ensemble.py), how many fit on the
device, and running a group: an out-of-memory ensemble is halved and retried, down to single
runs; an ensemble that fails otherwise falls back to training its members one by one.

`execution: sequential | ensemble | auto` (suite key, `--execution`): `auto` takes the ensemble
on CUDA only — on a CPU a plain loop is faster (benchmarks/ensemble.py measures both).
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable

import torch

from cnnbench.data import DeviceData
from cnnbench.results.schema import RunOutcome
from cnnbench.suite import RunSpec
from cnnbench.suite.schema import Execution
from cnnbench.train.checkpoint import Checkpoint
from cnnbench.train.engine import RunResult
from cnnbench.train.ensemble import Ensemble

DEFAULT_MAX_SIZE = 16
FREE_FRACTION = 0.8  # of the device memory free before the dry run: headroom for fragmentation

# what a run of an ensemble may differ in from the others; everything else (model and its
# options, optimizer class, dataset, batch size, epochs, schedule, device, probes) must be equal
MEMBER_KEYS = ("optimizer", "hparams", "lr", "seed", "run_id")


def ensemble_limit(ensemble_max: int | None, device: torch.device) -> int:
    """The most runs in one ensemble: `--ensemble-max` when given; else on CUDA no fixed cap (the
    memory probe of `members_that_fit` sizes each ensemble), elsewhere DEFAULT_MAX_SIZE."""
    if ensemble_max is not None:
        return ensemble_max
    return sys.maxsize if device.type == "cuda" else DEFAULT_MAX_SIZE


def resolve_execution(execution: Execution, device: torch.device) -> str:
    """`auto` is the ensemble on CUDA and sequential elsewhere."""
    if execution == "auto":
        return "ensemble" if device.type == "cuda" else "sequential"
    return execution


def ensemble_key(spec: RunSpec) -> str | None:
    """Runs with the same key can train as one ensemble; None for a run that must train alone:
    full-batch runs (chunked gradients), fp16 (one GradScaler per run), torch.compile and
    channels_last (neither composes with vmap here)."""
    train = spec.train
    if (spec.batch_size == "full" or train.get("precision") == "fp16" or train.get("compile")
            or train.get("channels_last")):
        return None
    shared = {k: v for k, v in vars(spec).items() if k not in MEMBER_KEYS}
    return json.dumps(shared, sort_keys=True, default=str)


def captured(spec: RunSpec) -> bool:
    """A `graphs: true` run: it trains through the ensemble's stacked step (train/graphs.py)
    even alone, as an ensemble of one."""
    return bool(spec.train.get("graphs"))


def plan_groups(specs: list[RunSpec], *, max_size: int) -> list[list[RunSpec]]:
    """`specs` in groups of at most `max_size` runs that can train together, in the order of
    each group's first run; a run that must train alone is a group of one."""
    groups: dict[str, list[RunSpec]] = {}
    order: list[list[RunSpec]] = []
    for spec in specs:
        key = ensemble_key(spec)
        if key is None:
            order.append([spec])
            continue
        if key not in groups or len(groups[key]) >= max_size:
            groups[key] = []
            order.append(groups[key])
        groups[key].append(spec)
    return order


def members_that_fit(specs: list[RunSpec], data: DeviceData, max_size: int) -> int:
    """How many of `specs` fit in one ensemble on the data's device: on CUDA a dry step of one
    and of two members gives the memory a member adds (as HFTA sizes its fused jobs); elsewhere
    `max_size`."""
    size = min(max_size, len(specs))
    if data.device.type != "cuda" or size < 2:
        return size
    peaks = []
    for k in (1, 2):
        gc.collect()
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(data.device)
        torch.cuda.reset_peak_memory_stats(data.device)
        ensemble = Ensemble(specs[:k], data)
        ensemble.dry_step()
        peaks.append(torch.cuda.max_memory_allocated(data.device) - before)
        del ensemble
    gc.collect()
    torch.cuda.empty_cache()
    per_member = max(peaks[1] - peaks[0], 1)
    free, _ = torch.cuda.mem_get_info(data.device)
    return max(1, min(size, 1 + int((FREE_FRACTION * free - peaks[0]) // per_member)))


def run_group(specs: list[RunSpec], data: DeviceData, *, checkpoint: Callable[[str], Checkpoint],
              run_one: Callable[[RunSpec], tuple[RunOutcome, list[dict]]],
              on_done: Callable[[RunSpec, RunOutcome, list[dict], int], None],
              on_epoch=None, log=None, max_size: int = DEFAULT_MAX_SIZE) -> None:
    """Train `specs` as ensembles of as many as fit; `on_done(spec, outcome, history, size)` for
    each run as it ends (`size`: its ensemble's, 1 when it trained alone through `run_one`)."""
    pending = list(specs)
    size = members_that_fit(pending, data, max_size) if len(pending) > 1 else 1
    while pending:
        batch, pending = pending[:size], pending[size:]
        if len(batch) == 1 and not captured(batch[0]):
            outcome, history = run_one(batch[0])
            on_done(batch[0], outcome, history, 1)
            continue
        left = {s.run_id: s for s in batch}

        def done(spec: RunSpec, result: RunResult, left: dict = left,
                 k: int = len(batch)) -> None:
            left.pop(spec.run_id)
            on_done(spec, result.outcome, result.history, k)

        try:
            Ensemble(batch, data, checkpoints=[checkpoint(s.run_id) for s in batch],
                     log=log).run(done, on_epoch)
        except (KeyboardInterrupt, SystemExit):
            raise
        except (torch.OutOfMemoryError, MemoryError):
            # the members that finished are written; the rest resume from their checkpoints
            size = max(1, len(batch) // 2)
            _release(data.device)
            if log is not None:
                log(f"  out of memory with {len(batch)} members: retrying {len(left)} run(s) "
                    f"in ensembles of {size}")
            pending = list(left.values()) + pending
        except Exception as exc:  # e.g. a user model that vmap cannot batch: train them alone
            _release(data.device)
            if log is not None:
                log(f"  ensemble failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
                    f"); training its {len(left)} run(s) one by one")
            for spec in left.values():
                outcome, history = run_one(spec)
                on_done(spec, outcome, history, 1)


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
