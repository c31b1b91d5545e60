"""Where a (possibly still running) suite stands: done / failed / interrupted / pending runs,
per shard and in all — what one looks at from a login node."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnnbench.errors import CnnbenchError
from cnnbench.results.schema import FAILED, SUITE_STATES, Status
from cnnbench.results.store import ResultStore

COLUMNS = SUITE_STATES


def state_of(status: str | None) -> str:
    """A run's result status as one of COLUMNS (no result file yet: pending)."""
    if status is None:
        return "pending"
    if status in FAILED:
        return "failed"
    return "interrupted" if status == Status.INTERRUPTED else "done"


@dataclass
class SuiteStatus:
    counts: dict[str, dict[str, int]]  # row ("1/4", …, "all") → column → count
    unfinished: list[tuple[str, str, str]] = field(default_factory=list)  # run_id, shard, state
    resumable: set[str] = field(default_factory=set)  # run_ids with a checkpoint on disk
    known_suite: bool = True


def suite_status(out: str | Path, specs=None, shards: int | None = None, *,
                 shard_ids: list[list[str]] | None = None) -> SuiteStatus:
    """Count the results in `out`; with the suite's `specs`, also the pending runs, per shard
    when `shards` is given (the same round-robin split as `run --shard`). `shard_ids` (each
    shard's run_ids, as `submit` recorded them) stands in for `specs` and `shards`, so that a
    login node's `cnnbench status` needs neither the suite nor torch."""
    store = ResultStore(out)
    if not store.runs_dir.is_dir():
        raise CnnbenchError(f"no results in {str(out)!r} (expected a folder with runs/ inside)")
    statuses = store.statuses()
    resumable = {p.stem for p in (store.root / "checkpoints").glob("*.pt")}
    if specs is None and shard_ids is None:
        counts = dict.fromkeys(COLUMNS, 0)
        for status in statuses.values():
            counts[state_of(status)] += 1
        counts["pending"] = 0
        return SuiteStatus({"all": counts}, resumable=resumable, known_suite=False)
    groups = _shard_groups(specs, shards) if shard_ids is None else _recorded_groups(shard_ids)
    result = SuiteStatus({}, resumable=resumable)
    shard_of = {run_id: name for name, group in groups.items() if name != "all"
                for run_id in group}
    for name, group in groups.items():
        counts = dict.fromkeys(COLUMNS, 0)
        for run_id in group:
            counts[state_of(statuses.get(run_id))] += 1
        result.counts[name] = counts
    for run_id in groups["all"]:
        state = state_of(statuses.get(run_id))
        if state in ("pending", "interrupted"):
            result.unfinished.append((run_id, shard_of.get(run_id, "-"), state))
    return result


def _shard_groups(specs, shards: int | None) -> dict[str, list[str]]:
    """"k/n" → the run_ids of shard k (when `shards` is given), and "all" → every run_id."""
    from cnnbench.suite.shards import shard

    groups = {f"{k}/{shards}": [s.run_id for s in shard(specs, k, shards)]
              for k in range(1, shards + 1)} if shards else {}
    return {**groups, "all": [s.run_id for s in specs]}


def _recorded_groups(shard_ids: list[list[str]]) -> dict[str, list[str]]:
    """The same groups from the recorded run_ids of each shard; "all" interleaves them back
    into the suite's sorted order (shard k holds every n-th run from the k-th)."""
    n = len(shard_ids)
    groups = {f"{k}/{n}": list(ids) for k, ids in enumerate(shard_ids, 1)}
    width = max((len(ids) for ids in shard_ids), default=0)
    every = [ids[i] for i in range(width) for ids in shard_ids if i < len(ids)]
    return {**groups, "all": every}
