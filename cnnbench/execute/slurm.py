"""Submit a suite as one Slurm job array through submitit: one array task per shard, each running
`cnnbench run --shard K/N` into the same results folder.

Slurm is the scheduler; this module only renders and submits. A task that is pre-empted or
reaches its time limit is requeued by submitit (its USR2 handler calls `ShardTask.checkpoint`)
and resumes from the per-epoch checkpoints; `scancel` stops a task gracefully (SIGTERM).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError

SUBMIT_RECORD = "submit.json"  # what the last submission was; `cnnbench status` reads it
SUITE_COPY = "suite.yaml"  # the suite as submitted: later edits of the original change nothing


@dataclass(frozen=True)
class SlurmRequest:
    """What each array task asks Slurm for."""

    partition: str | None = None
    time: str = "02:00:00"
    gpus_per_task: int = 0
    cpus_per_task: int = 8
    mem: str = "32G"
    array_parallelism: int = 16
    shards: int | None = None  # default: min(runs, array_parallelism)
    nodes: int = 1  # a data-parallel suite's ranks spread over this many nodes per task


def time_minutes(text: str) -> int:
    """Slurm's time formats (M, M:S, H:M:S, D-H, D-H:M, D-H:M:S) in whole minutes, rounded up."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise CnnbenchError(f"--time {text!r} is not a Slurm time; use e.g. 02:00:00, 90 or "
                            "1-12:00:00")
    days, a, b, c = (int(g) if g else 0 for g in match.groups())
    if match[1]:  # D-H[:M[:S]]
        seconds = days * 86400 + a * 3600 + b * 60 + c
    elif match[4]:  # H:M:S
        seconds = a * 3600 + b * 60 + c
    else:  # M or M:S
        seconds = a * 60 + b
    if seconds <= 0:
        raise CnnbenchError(f"--time {text!r} must be positive")
    return -(-seconds // 60)


def sbatch_parameters(request: SlurmRequest, job_name: str, world_size: int = 1
                      ) -> dict[str, Any]:
    """The request as submitit `SlurmExecutor` parameters (the same for --dry-run and submit);
    a data-parallel suite's `world_size` ranks become each array task's Slurm tasks, spread
    over `request.nodes` nodes (srun starts them; train/distributed.py reads their ranks)."""
    if not re.fullmatch(r"\d+[KMGT]?", request.mem.strip().upper()):
        raise CnnbenchError(f"--mem {request.mem!r} is not a Slurm memory size; use e.g. 32G, "
                            "500M")
    params: dict[str, Any] = {
        "job_name": job_name, "time": time_minutes(request.time),
        "cpus_per_task": request.cpus_per_task, "array_parallelism": request.array_parallelism,
        # passed through verbatim: submitit would rewrite a string --mem
        "additional_parameters": {"mem": request.mem.strip().upper()},
    }
    if request.partition:
        params["partition"] = request.partition
    if request.gpus_per_task:
        params["gpus_per_task"] = request.gpus_per_task
    if world_size > 1 or request.nodes > 1:
        if world_size % request.nodes:
            raise CnnbenchError(f"--nodes {request.nodes}: the suite's {world_size} processes per "
                                "run do not spread evenly; use a divisor of train.distributed."
                                "world_size")
        params["nodes"] = request.nodes
        params["ntasks_per_node"] = world_size // request.nodes
    return params


@dataclass(frozen=True)
class ShardTask:
    """The function each array task runs: `cnnbench run SUITE --out OUT --shard K/N`.

    It lives in the installed package, so the job's python finds it by reference."""

    suite_file: str
    out: str
    shards: int
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None
    rerun_failed: bool = False

    def __call__(self, k: int) -> dict[str, Any]:
        from cnnbench.execute.progress import PlainReporter
        from cnnbench.execute.runner import run_suite
        from cnnbench.suite import expand, load_suite
        from cnnbench.suite.shards import shard

        suite = load_suite(self.suite_file, list(self.overrides))
        specs = expand(suite)
        mine = shard(specs, k, self.shards)
        reporter = PlainReporter()
        reporter.log(f"Slurm array task: shard {k}/{self.shards}, {len(mine)} of {len(specs)} "
                     f"run(s), results in {self.out}")
        outcome = run_suite(suite, self.out, specs=mine, rerun_failed=self.rerun_failed,
                            data_dir=self.data_dir, reporter=reporter)
        return {"shard": f"{k}/{self.shards}", "ran": outcome.ran, "skipped": outcome.skipped,
                "statuses": outcome.statuses, "interrupted": outcome.interrupted}

    def checkpoint(self, k: int):
        """Called by submitit on pre-emption or near the time limit: requeue the same shard
        (its runs resume from their per-epoch checkpoints)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, k)


@dataclass
class Submission:
    job_id: str | None
    shards: int
    runs: int
    folder: Path
    script: str
    jobs: list = field(default_factory=list, repr=False)
    range_tests: int = 0  # an lr search's first job runs this many range tests


def _submitit():
    try:
        import submitit
    except ImportError:
        raise CnnbenchError("`cnnbench submit` needs submitit: pip install 'cnnbench[slurm]'"
                            ) from None
    return submitit


def submit(suite_file: Path, out: Path, request: SlurmRequest, *,
           overrides: list[str] | None = None, data_dir: str | None = None,
           rerun_failed: bool = False, dry_run: bool = False) -> Submission:
    """Submit one job array, one task per shard; with `dry_run`, only render its sbatch script.

    The suite is validated first and copied into `out`; submitit's logs go to
    `out/slurm/<time>/` (a fresh folder per submission: job ids may repeat across clusters)."""
    from cnnbench.suite import expand, load_suite, shard
    from cnnbench.suite.search import has_search, range_tests
    from cnnbench.suite.starts import GRID_POINTS, read_starts

    submitit = _submitit()
    from submitit.slurm.slurm import _make_sbatch_string  # what SlurmExecutor itself renders

    overrides = list(overrides or [])
    suite = load_suite(suite_file, overrides)
    starts = read_starts(out)
    specs = expand(suite, starts)
    # round 1 as planned: each range test still to run suggests a grid of GRID_POINTS lrs
    runs = len(specs) + GRID_POINTS * len(range_tests(suite, starts))
    shards = request.shards or min(runs, request.array_parallelism)
    if not 1 <= shards <= runs:
        raise CnnbenchError(f"--shards {shards}: the suite has {runs} run(s); choose 1..{runs}")
    out = Path(out).resolve()
    folder = out / "slurm" / time.strftime("%Y%m%d-%H%M%S")
    while folder.exists():  # two submissions within one second
        folder = folder.with_name(folder.name + "-1")
    params = sbatch_parameters(request, job_name=f"cnnbench-{suite.name}",
                               world_size=world_size(suite))
    command = " ".join([shlex.quote(sys.executable), "-u -m submitit.core._submit",
                        shlex.quote(str(folder))])  # as SlurmExecutor writes it
    script = _make_sbatch_string(command=command, folder=folder, map_count=shards, **params)
    if dry_run:
        return Submission(None, shards, runs, folder, script)
    if shutil.which("sbatch") is None or shutil.which("srun") is None:
        raise CnnbenchError("sbatch/srun not found on PATH: run `cnnbench submit` on a Slurm "
                            "login node (or see the script with --dry-run)")
    out.mkdir(parents=True, exist_ok=True)
    suite_copy = out / SUITE_COPY
    if Path(suite_file).resolve() != suite_copy:
        shutil.copyfile(suite_file, suite_copy)
    if has_search(suite):  # successive arrays, one per round (execute/slurm_rounds.py)
        return _submit_search(suite, suite_copy, out, folder, request, overrides, data_dir,
                              rerun_failed, script)
    task = ShardTask(str(suite_copy), str(out), shards, tuple(overrides), data_dir, rerun_failed)
    executor = submitit.SlurmExecutor(folder=folder)
    executor.update_parameters(**params)
    jobs = executor.map_array(task, range(1, shards + 1))
    job_id = jobs[0].job_id.split("_")[0]
    record = {"job_id": job_id, "shards": shards, "runs": runs, "suite": SUITE_COPY,
              "overrides": overrides, "logs": str(folder), "submitted": time.time(),
              "request": asdict(request),
              # each task's run_ids: `cnnbench status` counts from them without the suite
              "shard_run_ids": [[s.run_id for s in shard(specs, k, shards)]
                                for k in range(1, shards + 1)]}
    (out / SUBMIT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return Submission(job_id, shards, runs, folder, script, jobs)


def _submit_search(suite, suite_copy: Path, out: Path, folder: Path, request: SlurmRequest,
                   overrides: list[str], data_dir: str | None, rerun_failed: bool,
                   script: str) -> Submission:
    """Submit the lr search's current round and the job that chains the next ones."""
    from cnnbench.execute.rounds import load_state
    from cnnbench.execute.slurm_rounds import NextRound, submit_range_tests, submit_round

    state = load_state(suite, out)
    if state.finished:
        raise CnnbenchError(f"the lr search in {str(out)!r} is finished: nothing to submit")
    record = {"suite": SUITE_COPY, "overrides": overrides, "logs": str(folder), "search": True,
              "submitted": time.time(), "request": asdict(request)}
    (out / SUBMIT_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    number = len(state.rounds)
    # the job between rounds is small: one cpu, a little memory, a few minutes, no GPU
    small = replace(request, cpus_per_task=1, mem="2G", time="00:15:00", gpus_per_task=0,
                    nodes=1)
    chain = NextRound(str(suite_copy), str(out), tuple(overrides), data_dir, rerun_failed,
                      sbatch_parameters(request, "cnnbench-round", world_size(suite)),
                      sbatch_parameters(small, "cnnbench-next"), request.shards, str(folder),
                      str(out / SUBMIT_RECORD), after=number)
    if state.pending:  # the range tests run in a job of their own, which then submits round 1
        return Submission(submit_range_tests(chain, len(state.pending)), 1, 0, folder, script,
                          range_tests=len(state.pending))
    job_id = submit_round(chain, state.current, number)
    shards = min(len(state.current), request.shards or request.array_parallelism)
    return Submission(job_id, shards, len(state.current), folder, script)


def world_size(suite) -> int:
    """Processes per run the suite asks for (1 unless data-parallel)."""
    config = suite.train.distributed
    return (config.world_size or 1) if config is not None else 1


def read_record(out: Path) -> dict[str, Any] | None:
    """What the last `cnnbench submit` into `out` recorded, if anything."""
    path = Path(out) / SUBMIT_RECORD
    return json.loads(path.read_text()) if path.exists() else None
