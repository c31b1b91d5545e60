"""Shards: a pure, stable share K/N of a suite's sorted runs (`--shard`, Slurm array tasks)."""

from __future__ import annotations

import os
import re

from cnnbench.errors import CnnbenchError
from cnnbench.suite.expand import RunSpec


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
