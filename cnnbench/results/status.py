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


def suite_status(out: str | Path, specs=None, shards: int | None = None) -> SuiteStatus:
    """Count the results in `out`; with the suite's `specs`, also the pending runs, per shard
    when `shards` is given (the same round-robin split as `run --shard`)."""
    from cnnbench.suite.shards import shard

    store = ResultStore(out)
    if not store.runs_dir.is_dir():
        raise CnnbenchError(f"no results in {str(out)!r} (expected a folder with runs/ inside)")
    statuses = store.statuses()
    resumable = {p.stem for p in (store.root / "checkpoints").glob("*.pt")}
    if specs is None:
        counts = dict.fromkeys(COLUMNS, 0)
        for status in statuses.values():
            counts[state_of(status)] += 1
        counts["pending"] = 0
        return SuiteStatus({"all": counts}, resumable=resumable, known_suite=False)
    groups = {f"{k}/{shards}": shard(specs, k, shards) for k in range(1, shards + 1)} \
        if shards else {}
    groups["all"] = specs
    result = SuiteStatus({}, resumable=resumable)
    shard_of = {s.run_id: name for name, group in groups.items() if name != "all"
                for s in group}
    for name, group in groups.items():
        counts = dict.fromkeys(COLUMNS, 0)
        for spec in group:
            counts[state_of(statuses.get(spec.run_id))] += 1
        result.counts[name] = counts
    for spec in specs:
        state = state_of(statuses.get(spec.run_id))
        if state in ("pending", "interrupted"):
            result.unfinished.append((spec.run_id, shard_of.get(spec.run_id, "-"), state))
    return result
