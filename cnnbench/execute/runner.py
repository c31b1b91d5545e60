"""`run_suite`: which runs of a suite still need to run (resume), and who runs them — this process
in order, or N local workers."""

from __future__ import annotations

from pathlib import Path

from cnnbench.errors import CnnbenchError
from cnnbench.execute.grouping import Execution
from cnnbench.execute.local import run_sequential
from cnnbench.execute.progress import PlainReporter
from cnnbench.execute.workers import run_workers
from cnnbench.results.schema import FAILED, SuiteOutcome
from cnnbench.results.store import ResultStore
from cnnbench.suite import RunSpec, Suite, expand
from cnnbench.train.distributed import launched


def run_suite(suite: Suite, out: str | Path | None = None, *, rerun: bool = False,
              rerun_failed: bool = False, retime: bool = False, data_dir: str | None = None,
              reporter: PlainReporter | None = None, fail_fast: bool = False,
              workers: int = 1, specs: list[RunSpec] | None = None,
              execution: Execution | None = None,
              ensemble_max: int | None = None) -> SuiteOutcome:
    """Run every run of the suite (or `specs`) not already in `out`; write one file per run.

    An unfinished run resumes from its last per-epoch checkpoint. With `rerun_failed`, runs that
    ended in error, oom or timeout run again; with `retime`, runs whose timing was contended (they
    shared the machine) run again; with `fail_fast`, the suite stops after the first
    such run; with `workers` > 1, that many processes share the runs; `specs` narrows the suite
    to some of its runs (a shard); `execution` (default: the suite's) trains runs that differ
    only in lr, seed or hyper-parameter values as vectorized ensembles of up to `ensemble_max`
    (default: as many as the GPU's memory holds; 16 on a CPU; with `workers`, each worker groups
    its own share)."""
    out = Path(out) if out is not None else Path("results") / suite.name
    if execution is not None:  # as if the suite said so: workers read it from there
        suite = suite.model_copy(update={"execution": execution})
    whole = specs is None
    specs = expand(suite) if specs is None else specs
    store = ResultStore(out)
    store.prepare()
    done = {} if rerun else store.finished_ids()
    reporter = reporter or PlainReporter()
    if store.damaged:
        reporter.log(f"the runs in {len(store.damaged)} result file(s) that could not be read "
                     f"count as not done and run again: "
                     f"{', '.join(str(p) for p, _ in store.damaged)}")
    if rerun_failed:
        done = {k: v for k, v in done.items() if v not in FAILED}
    if retime:  # seeded runs: the same numbers again, timed on a machine of their own now
        contended = store.contended_ids()
        done = {k: v for k, v in done.items() if k not in contended}
    todo = [s for s in specs if s.run_id not in done]
    if distributed(suite):
        if workers > 1:
            raise CnnbenchError("--workers shares runs between processes and "
                                "train.distributed shares one run between them: drop one")
        outcome = _run_distributed(suite, store, specs, todo, done, reporter=reporter,
                                   data_dir=data_dir, fail_fast=fail_fast)
    elif workers > 1 and len(todo) > 1:
        outcome = run_workers(suite, out, specs, todo, workers=workers, data_dir=data_dir,
                              reporter=reporter, fail_fast=fail_fast, ensemble_max=ensemble_max)
    else:
        outcome = _run_here(suite, store, specs, todo, done, reporter=reporter,
                            data_dir=data_dir, fail_fast=fail_fast, ensemble_max=ensemble_max)
    # the whole suite, not a shard's share: other shards are likely still writing (which
    # compaction survives, but each would pay for it); expanded again only when it may compact
    if (outcome.ran and not outcome.interrupted and is_main_rank()
            and (whole or len(specs) == len(expand(suite)))):
        _compact_if_many(out, reporter)
    return outcome


def distributed(suite: Suite) -> bool:
    """Whether each run trains over several processes: a launcher started several (torchrun,
    srun), or the suite asks for a world_size above 1."""
    from cnnbench.execute.distributed import world_size

    return suite.train.distributed is not None and world_size(suite) > 1 or launched() is not None


def is_main_rank() -> bool:
    """False in the ranks other than 0 of a data-parallel launch: rank 0 speaks for them."""
    launch = launched()
    return launch is None or launch.is_main


def _run_here(suite: Suite, store: ResultStore, specs: list[RunSpec], todo: list[RunSpec],
              done: dict[str, str], *, reporter: PlainReporter, data_dir: str | None,
              fail_fast: bool, ensemble_max: int | None) -> SuiteOutcome:
    """Train `todo` in this process, one run or one ensemble after another."""
    return _run_with(store, specs, todo, done, reporter, lambda skipped: run_sequential(
        suite, store, todo, device=None, data_dir=data_dir, reporter=reporter,
        fail_fast=fail_fast, skipped=skipped, ensemble_max=ensemble_max))


def _run_distributed(suite: Suite, store: ResultStore, specs: list[RunSpec],
                     todo: list[RunSpec], done: dict[str, str], *, reporter: PlainReporter,
                     data_dir: str | None, fail_fast: bool) -> SuiteOutcome:
    """Train `todo` one data-parallel run after another (execute/distributed.py)."""
    from cnnbench.execute.distributed import run_distributed

    # every rank goes in, even with nothing to do here: rank 0's list is the one that counts
    return _run_with(store, specs, todo, done, reporter, lambda skipped: run_distributed(
        suite, store, specs, todo, data_dir=data_dir, reporter=reporter, fail_fast=fail_fast),
        always=launched() is not None)


def _run_with(store: ResultStore, specs: list[RunSpec], todo: list[RunSpec],
              done: dict[str, str], reporter: PlainReporter, train, *,
              always: bool = False) -> SuiteOutcome:
    """Count the finished runs, `train(skipped)` the rest, and sum up."""
    skipped = len(specs) - len(todo)
    statuses: dict[str, int] = {}
    for spec in specs:
        if spec.run_id in done:
            statuses[done[spec.run_id]] = statuses.get(done[spec.run_id], 0) + 1
    if not todo and not always:
        reporter.start(0, skipped)
        reporter.finish()
        return SuiteOutcome(store.root, 0, skipped, statuses)
    ran, new, stopped = train(skipped)
    for status, count in new.items():
        statuses[status] = statuses.get(status, 0) + count
    if stopped:
        reporter.log(f"{stopped}: stopped with {len(todo) - ran} run(s) not started; re-run the "
                     "same command to resume")
    return SuiteOutcome(store.root, ran, skipped, statuses, interrupted=bool(stopped))


def _compact_if_many(out: Path, reporter: PlainReporter) -> None:
    """Fold the writers' parts once there are enough of them to slow reading down."""
    from cnnbench.results.compaction import AUTO_COMPACT_FILES, compact, loose_run_files

    if loose_run_files(out) >= AUTO_COMPACT_FILES:
        try:
            done = compact(out)
        except CnnbenchError as exc:  # e.g. another compaction holds the lock: results are safe
            reporter.log(f"not compacted: {exc}")
            return
        reporter.log(f"compacted {done.removed} result files into one file per table")
