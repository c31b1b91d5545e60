"""How long a command takes, whole process, before and after: each command runs as a subprocess
(`python -m cnnbench …`) against two source trees, alternating, and the median of the repeats
is printed with the ratio after/before. `before` is a git ref checked out into a temporary
worktree (default: main); `after` is this checkout. Both use this interpreter's packages.

    python benchmarks/cli_latency.py                    # main vs this checkout, 5 repeats
    python benchmarks/cli_latency.py --before 5d7ac25 --repeats 5

The results folder that `report` and `status` read is made first by a tiny synthetic suite; the
model-cost cache (CNNBENCH_CACHE) is a temporary folder, filled by one untimed `list models`
before the timed ones (the cold first call is printed apart). `import torch` alone is the floor
every torch-needing command pays. A command a tree does not have (or that fails there) is
shown as '—'. (The 'before' ref must run on its own: 436d161 lacked cnnbench/results/schema.py,
then git-ignored by mistake.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parents[1]
TINY = {"name": "tiny", "dataset": {"name": "synthetic", "channels": 1, "image_size": 8,
                                    "num_classes": 3, "train_size": 64, "test_size": 16,
                                    "val_size": 16},
        "train": {"epochs": 1, "batch_size": 16}, "seeds": 1, "device": "cpu",
        "matrix": {"model": [{"name": "mlp", "hidden": 8}], "optimizer": ["sgd"],
                   "lr": [0.1]}}


def commands(results: Path) -> list[tuple[str, list[str]]]:
    quickstart = str(HERE / "suites" / "quickstart.yaml")
    return [("import torch (floor)", ["-c", "import torch"]),
            ("cnnbench --help", ["-m", "cnnbench", "--help"]),
            ("cnnbench schema", ["-m", "cnnbench", "schema"]),
            ("cnnbench init NAME", ["-m", "cnnbench", "init", "bench_starter"]),
            ("cnnbench list suites", ["-m", "cnnbench", "list", "suites"]),
            ("cnnbench validate suites/quickstart.yaml", ["-m", "cnnbench", "validate",
                                                          quickstart]),
            ("cnnbench plan suites/quickstart.yaml", ["-m", "cnnbench", "plan", quickstart]),
            ("cnnbench report RESULTS", ["-m", "cnnbench", "report", str(results)]),
            ("cnnbench status RESULTS", ["-m", "cnnbench", "status", str(results)]),
            ("cnnbench list models", ["-m", "cnnbench", "list", "models"])]


def timed(tree: Path, args: list[str], cwd: Path, env: dict[str, str]) -> float | None:
    """Seconds for one run of `python ARGS` with `tree` first on the path; None if it fails."""
    for leftover in cwd.iterdir():  # `init` refuses to overwrite: every run starts empty
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=cwd, env={**env, "PYTHONPATH": str(tree)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    return elapsed if done.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="main", help="git ref of the 'before' tree")
    parser.add_argument("--repeats", type=int, default=5)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cli_latency_"))
    before = work / "before"
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", "-q", str(before),
                    options.before], check=True)
    try:
        env = {**os.environ, "CNNBENCH_CACHE": str(work / "cache"), "COLUMNS": "200"}
        (work / "tiny.yaml").write_text(yaml.safe_dump(TINY))
        subprocess.run([sys.executable, "-m", "cnnbench", "run", str(work / "tiny.yaml"),
                        "--out", str(work / "results")], env={**env, "PYTHONPATH": str(HERE)},
                       check=True, capture_output=True)
        cwd = work / "cwd"
        cwd.mkdir()
        cold = timed(HERE, ["-m", "cnnbench", "list", "models"], cwd, env)
        table = commands(work / "results")
        times: dict[tuple[str, str], list[float | None]] = {}
        for repeat in range(options.repeats):
            for name, args in table:
                trees = [("before", before), ("after", HERE)]
                for side, tree in trees if repeat % 2 == 0 else trees[::-1]:
                    times.setdefault((name, side), []).append(timed(tree, args, cwd, env))
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(before)])
        shutil.rmtree(work, ignore_errors=True)

    def median(name: str, side: str) -> float | None:
        values = times[(name, side)]
        return None if None in values else statistics.median(values)

    print(f"whole process, median of {options.repeats}, before = {options.before}, after = "
          f"this checkout; {os.cpu_count()} CPU(s)")
    print("| command | before s | after s | after/before |\n|---|---:|---:|---:|")
    for name, _ in table:
        b, a = median(name, "before"), median(name, "after")
        ratio = f"{a / b:.2f}" if a is not None and b is not None else "—"
        print(f"| `{name}` | {'—' if b is None else f'{b:.2f}'} | "
              f"{'—' if a is None else f'{a:.2f}'} | {ratio} |")
    print(f"after, `cnnbench list models` with an empty cost cache (first call): "
          f"{'failed' if cold is None else f'{cold:.2f} s'}")


if __name__ == "__main__":
    main()
