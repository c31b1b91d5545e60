"""Run a suite with lr searches round after round: compute the current round from the results
(`suite.search.search_state`), run it (or this shard's share of it) with `run_suite`, repeat.
Round 1 of a `start: auto` search waits for its lr range test: the first process to need it runs
and records it (`execute/starts.py`); every shard that finds no record runs it too, and all read
the one record written first.

Every round's runs are ordinary runs, so re-running resumes: finished runs are skipped and the
replay lands on the same round. A shard runs its share of the current round; when its share is
done but other shards' are not, it stops (the round is not finished, so no next round exists
yet); the shard that finishes a round last goes on with its share of the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError
from cnnbench.execute.progress import PlainReporter
from cnnbench.execute.runner import run_suite
from cnnbench.execute.starts import run_range_tests
from cnnbench.results.schema import SuiteOutcome
from cnnbench.results.store import ResultStore
from cnnbench.suite import Suite
from cnnbench.suite.search import SearchState, search_state
from cnnbench.suite.shards import shard as take
from cnnbench.suite.starts import read_starts


@dataclass(frozen=True)
class SearchRun:
    """What running the rounds came to: the summed outcome, and the search's state after."""

    outcome: SuiteOutcome
    state: SearchState
    waiting: bool = False  # this shard's share is done; other shards still run the round


def load_state(suite: Suite, out: str | Path) -> SearchState:
    """The search's state against the results in `out` (none yet: round 1)."""
    from cnnbench.results.loading import load_results

    store = ResultStore(out)
    runs = load_results(out)[0] if store.runs_dir.is_dir() else None
    return search_state(suite, runs, read_starts(out))


def run_rounds(suite: Suite, out: str | Path, *, reporter: PlainReporter,
               shard: tuple[int, int] | None = None, max_rounds: int | None = None,
               rerun: bool = False, **options: Any) -> SearchRun:
    """Run the rounds not yet finished (`options` as `run_suite`'s), this shard's share of each
    where `shard` is (K, N); at most `max_rounds` of them (Slurm runs one per job array)."""
    if rerun:
        raise CnnbenchError("--rerun cannot be used with an lr search: its later rounds depend "
                            "on the results; run it into a fresh --out instead")
    out = Path(out)
    ran, rounds_run, interrupted, waiting = 0, 0, False, False
    ResultStore(out).prepare()  # a folder we cannot write to fails before any training
    state = load_state(suite, out)
    if state.pending:
        run_range_tests(suite, out, state.pending, data_dir=options.get("data_dir"),
                        reporter=reporter)
        state = load_state(suite, out)
    while not state.finished and (max_rounds is None or rounds_run < max_rounds):
        number, specs = len(state.rounds), state.current
        mine = take(specs, *shard) if shard else specs
        reporter.log(f"lr search: round {number}, {len(specs)} run(s)"
                     + (f", {len(mine)} in shard {shard[0]}/{shard[1]}" if shard else ""))
        outcome = run_suite(suite, out, specs=mine, reporter=reporter, **options)
        rounds_run += 1
        ran += outcome.ran
        interrupted = outcome.interrupted
        failed = options.get("fail_fast") and not outcome.succeeded
        state = load_state(suite, out)
        if interrupted or failed:
            break
        if len(state.rounds) == number and not state.finished:
            waiting = True  # the other shards' shares of this round are still running
            break
    return SearchRun(_outcome(out, state, ran, interrupted), state, waiting)


def _outcome(out: Path, state: SearchState, ran: int, interrupted: bool) -> SuiteOutcome:
    """The outcome over every round so far: status counts of all their finished runs."""
    found = ResultStore(out).statuses() if ResultStore(out).runs_dir.is_dir() else {}
    statuses: dict[str, int] = {}
    for spec in state.specs:
        if spec.run_id in found:
            statuses[found[spec.run_id]] = statuses.get(found[spec.run_id], 0) + 1
    return SuiteOutcome(out, ran, max(0, sum(statuses.values()) - ran), statuses, interrupted)
