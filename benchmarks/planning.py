"""How planning scales: `cnnbench validate` and `cnnbench plan` of a log-grid suite of N runs
(one model, one optimizer, one seed: N learning rates), each a whole process beside
`cnnbench --help` in the same run, so that "own" (the command minus `--help`: what planning
itself costs, start-up left out) compares across machines. Each figure is the median of
--repeats timings, the commands alternating; `plan` writes its rows as CSV to a discarded pipe.

Goal (issue 28): validate of 100,000 runs in under 3 s of its own on 2 cores.

    python benchmarks/planning.py                          # N = 1,000, 10,000, 100,000
    python benchmarks/planning.py --sizes 1000 --repeats 1 --no-plan
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parents[1]
SIZES = (1_000, 10_000, 100_000)


def log_grid_suite(n: int) -> dict:
    """A suite of n runs: one small model and sgd over a log grid of n learning rates."""
    return {"name": f"plan{n}", "device": "cpu", "seeds": 1,
            "dataset": {"name": "synthetic", "channels": 1, "image_size": 8, "num_classes": 3,
                        "train_size": 64, "test_size": 16, "val_size": 16},
            "train": {"epochs": 1, "batch_size": 16},
            "matrix": {"model": [{"name": "mlp", "hidden": 8}], "optimizer": ["sgd"],
                       "lr": {"log": [1.0e-6, 1.0], "num": n}}}


def timed(args: list[str], cwd: Path) -> float:
    """Seconds for one `python -m cnnbench ARGS` of this checkout; a failure stops the benchmark."""
    env = {**os.environ, "PYTHONPATH": str(HERE), "CNNBENCH_MAX_RUNS": str(10**7)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "cnnbench", *args], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"cnnbench {' '.join(args)} failed:\n{done.stderr}")
    return elapsed


Row = tuple[str, int | None, float]  # command, N (None: --help), median seconds


def measure(sizes: tuple[int, ...], repeats: int, plan: bool) -> list[Row]:
    """(command, N or None for --help, median seconds) for every command and size."""
    with tempfile.TemporaryDirectory(prefix="planning_") as folder:
        work = Path(folder)
        table: list[tuple[str, int | None, list[str]]] = [("--help", None, ["--help"])]
        for n in sizes:
            suite = work / f"plan{n}.yaml"
            suite.write_text(yaml.safe_dump(log_grid_suite(n)))
            table.append(("validate", n, ["validate", str(suite)]))
            if plan:
                table.append(("plan", n, ["plan", str(suite), "--format", "csv",
                                          "--out", str(work / "none")]))
        times: dict[int, list[float]] = {i: [] for i in range(len(table))}
        for repeat in range(repeats):
            order = list(range(len(table)))
            for i in order if repeat % 2 == 0 else order[::-1]:
                times[i].append(timed(table[i][2], work))
    return [(name, n, statistics.median(times[i])) for i, (name, n, _) in enumerate(table)]


def render(rows: list[Row], repeats: int) -> str:
    help_s = next(s for name, n, s in rows if n is None)
    lines = [f"whole process, median of {repeats}; {os.cpu_count()} CPU(s); own = the command "
             "minus `cnnbench --help`",
             "| command | runs | s | own s |", "|---|---:|---:|---:|",
             f"| `cnnbench --help` | — | {help_s:.2f} | — |"]
    lines += [f"| `cnnbench {name}` | {n:,} | {s:.2f} | {s - help_s:.2f} |"
              for name, n, s in rows if n is not None]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda t: tuple(int(s) for s in t.split(",")),
                        default=SIZES, help="comma-separated run counts")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-plan", dest="plan", action="store_false",
                        help="time validate only")
    options = parser.parse_args(argv)
    print(render(measure(options.sizes, options.repeats, options.plan), options.repeats))


if __name__ == "__main__":
    main()
