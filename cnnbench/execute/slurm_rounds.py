"""An lr search on Slurm: successive job arrays, one per round.

`cnnbench submit` submits round R's array (one task per shard of that round, each running its
share with `run_suite`) and, depending on it (`afterany`), one small job, `NextRound`, that
reads the results, computes the search's state (`suite.search.search_state`: the same in any
process) and submits round R+1's array and its own successor, until the search is finished.
A round left unfinished (a task that died, a run interrupted) is submitted again, at most
`RETRIES` times in a row; `cnnbench submit` again resumes from wherever the results stand.
Where round 1 waits for the lr range tests of `start: auto` searches, `submit` sends a
`NextRound` job first, with the array tasks' resources (the tests train): it runs and records
the tests, then submits round 1 as any `NextRound` submits its round; nothing trains on the
login node.
Every step is appended to the submission record (`submit.json`), which `cnnbench status` reads.
This module renders nothing itself: `execute/slurm.py` hands it the sbatch parameters.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

RETRIES = 2  # submissions of one unfinished round in a row before the chain gives up


@dataclass(frozen=True)
class RoundTask:
    """One array task of round `round`: shard K of the round's runs."""

    suite_file: str
    out: str
    overrides: tuple[str, ...]
    data_dir: str | None
    rerun_failed: bool
    round: int
    shards: int

    def __call__(self, k: int) -> dict[str, Any]:
        from cnnbench.execute.progress import PlainReporter
        from cnnbench.execute.rounds import load_state
        from cnnbench.execute.runner import run_suite
        from cnnbench.suite import load_suite
        from cnnbench.suite.shards import shard

        suite = load_suite(self.suite_file, list(self.overrides))
        state = load_state(suite, self.out)
        specs = state.rounds[self.round - 1] if self.round <= len(state.rounds) else []
        mine = shard(specs, k, self.shards)
        reporter = PlainReporter()
        reporter.log(f"Slurm array task: lr search round {self.round}, shard {k}/{self.shards},"
                     f" {len(mine)} of {len(specs)} run(s), results in {self.out}")
        outcome = run_suite(suite, self.out, specs=mine, rerun_failed=self.rerun_failed,
                            data_dir=self.data_dir, reporter=reporter)
        return {"round": self.round, "shard": f"{k}/{self.shards}", "ran": outcome.ran,
                "statuses": outcome.statuses, "interrupted": outcome.interrupted}

    def checkpoint(self, k: int):
        """On pre-emption or near the time limit: requeue the same shard (runs resume)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, k)


@dataclass(frozen=True)
class NextRound:
    """The job after a round's array: submit the next round (and its own successor)."""

    suite_file: str
    out: str
    overrides: tuple[str, ...]
    data_dir: str | None
    rerun_failed: bool
    params: dict[str, Any]  # submitit parameters of each round's array tasks
    small: dict[str, Any]  # … and of this bookkeeping job
    shards: int | None  # array tasks per round (None: as many as `array_parallelism` allows)
    folder: str
    record: str  # the submission record's path
    after: int  # the round whose array this job waited for
    attempt: int = 1

    def __call__(self) -> dict[str, Any]:
        from cnnbench.execute.rounds import load_state
        from cnnbench.suite import load_suite

        suite = load_suite(self.suite_file, list(self.overrides))
        state = load_state(suite, self.out)
        if state.pending:  # round 1 waits for range tests: they run here, in this job
            from cnnbench.execute.progress import PlainReporter
            from cnnbench.execute.starts import run_range_tests

            run_range_tests(suite, self.out, state.pending, data_dir=self.data_dir,
                            reporter=PlainReporter())
            _append(Path(self.record), {"event": "range tests", "groups": len(state.pending)})
            state = load_state(suite, self.out)
        number = len(state.rounds)
        if state.finished:
            _append(Path(self.record), {"event": "finished", "rounds": number})
            return {"finished": True, "rounds": number}
        attempt = self.attempt + 1 if number == self.after else 1
        if attempt > RETRIES:
            _append(Path(self.record), {"event": "stalled", "round": number,
                                     "message": f"round {number} still unfinished after "
                                                f"{RETRIES} submissions; run `cnnbench submit` "
                                                "again to resume"})
            return {"finished": False, "stalled": number}
        job = submit_round(replace(self, after=number, attempt=attempt), state.current, number)
        return {"finished": False, "submitted": job}


def _append(path: Path, event: dict[str, Any]) -> None:
    """Add one step of the chain to the record (written by one job at a time)."""
    record = json.loads(path.read_text()) if path.exists() else {}
    record.setdefault("events", []).append({**event, "time": time.time()})
    if "job_id" in event:
        record["job_id"], record["round"] = event["job_id"], event["round"]
    path.write_text(json.dumps(record, indent=2) + "\n")


def submit_round(chain: NextRound, specs: list, number: int) -> str:
    """Submit round `number`'s array (its shards) and, after it, the next `NextRound` job;
    returns the array's job id."""
    import submitit

    shards = min(len(specs), chain.shards or chain.params["array_parallelism"])
    folder = Path(chain.folder) / f"round-{number}"
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**{**chain.params, "job_name": f"cnnbench-round-{number}"})
    task = RoundTask(chain.suite_file, chain.out, chain.overrides, chain.data_dir,
                     chain.rerun_failed, number, shards)
    jobs = executor.map_array(task, range(1, shards + 1))
    array = jobs[0].job_id.split("_")[0]
    follow = submitit.SlurmExecutor(folder=folder)
    follow.update_parameters(**{**chain.small, "job_name": f"cnnbench-next-{number}",
                                "dependency": f"afterany:{array}"})
    follow.submit(replace(chain, after=number))
    _append(Path(chain.record), {"event": "round", "round": number, "job_id": array,
                              "shards": shards, "runs": len(specs)})
    return array


def submit_range_tests(chain: NextRound, groups: int) -> str:
    """Submit the job that runs the range tests round 1 waits for, with the array tasks'
    resources, and then submits round 1 (`NextRound` after round 0); returns its job id."""
    import submitit

    executor = submitit.SlurmExecutor(folder=Path(chain.folder) / "range-tests")
    executor.update_parameters(**{**chain.params, "job_name": "cnnbench-range-tests"})
    job = executor.submit(replace(chain, after=0))
    _append(Path(chain.record), {"event": "range tests submitted", "round": 0,
                                 "job_id": job.job_id, "groups": groups})
    return job.job_id
