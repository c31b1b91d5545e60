"""How results scale: N synthetic runs written through `ResultStore`, then read back.

For each N, with every run's row shaped like a real one (every `runs` column, the sgd or adam
hyper-parameters) and `--evals` history rows: seconds of `load_results`, of `cnnbench report`
(load_results + the report, rendered to a discarded console), of the DuckDB query of
docs/results.md on the same files, and the folder's size on disk — before and after `compact`.
Each time is the median of REPEATS timings in this process (one timing on a shared machine
wanders by ±30 %).

Goal (issue 14): 50,000 runs × 11 evaluations, compacted: load_results + report < 2 s on 2
cores and < 20 MB; not compacted: < 15 s.

    python benchmarks/results_scale.py                      # N = 1,000, 10,000, 50,000
    python benchmarks/results_scale.py --sizes 2000 --dir /tmp/scale
"""

from __future__ import annotations

import argparse
import io
import itertools
import math
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from cnnbench.render.report import Report, write_report
from cnnbench.results.compaction import compact
from cnnbench.results.loading import load_results
from cnnbench.results.schema import SCHEMA_VERSION
from cnnbench.results.store import ResultStore

RESULTS_PAGE = Path(__file__).parents[1] / "docs" / "results.md"  # its DuckDB query
VAL_SIZE = 10_000  # accuracies are multiples of 1/VAL_SIZE, as in a real evaluation
TRAIN_SIZE = 50_000
REPEATS = 3  # timings per figure, of which the median is printed
HPARAMS = {
    "sgd": {"momentum": 0, "dampening": 0, "weight_decay": 0, "nesterov": False,
            "maximize": False, "differentiable": False},
    "adam": {"betas": "[0.9, 0.999]", "eps": 1e-8, "weight_decay": 0, "amsgrad": False,
             "maximize": False, "capturable": False, "differentiable": False},
}


def grid(n: int):
    """The first n (model, optimizer, label, lr, seed) of a 10 × 10 × 25 × 20 suite."""
    models = [f"model{i}" for i in range(10)]
    labels = [(f"opt{i}", "sgd" if i % 2 else "adam") for i in range(10)]
    lrs = np.geomspace(1e-5, 1.0, 25)
    combos = itertools.product(models, labels, lrs, range(20))
    return list(itertools.islice(combos, n))


def _loss(rng) -> float:
    return float(np.float32(rng.random() * 2))  # torch computes losses in float32


def _acc(rng, size: int) -> float:
    return int(rng.integers(size)) / size  # correct / evaluated


def synthetic_run(i, model, label, name, lr, seed, evals, rng) -> tuple[dict, list[dict]]:
    """A row with every column a real run fills, in the value shapes real runs have."""
    run_id = f"{i:012x}"
    final = rng.integers(VAL_SIZE // 2, VAL_SIZE) / VAL_SIZE
    diverged = rng.random() < 0.1
    record = {
        "suite": "scale", "run_id": run_id, "model": model, "model_kwargs": "{}",
        "optimizer": label, "optimizer_name": name, "lr": float(lr), "seed": seed,
        "batch": "128", "dataset": "synthetic", "requested_device": "cpu", "epochs": evals - 1,
        "schedule": '"constant"', "hparams": "{}",
        **{f"hp_{k}": v for k, v in HPARAMS[name].items()},
        "device": "cpu", "torch_version": "2.13.0+cpu", "cuda_version": None,
        "python_version": "3.11.7", "host": "node1", "git_commit": "0" * 40,
        "device_name": "x86_64", "torch_threads": 2,
        "status": "diverged" if diverged else "ok", "message": "loss diverged" if diverged else "",
        "epochs_done": evals - 1, "steps": 100 * (evals - 1), "samples": 12800 * (evals - 1),
        "train_loss": math.inf if diverged else _loss(rng),
        "train_acc": _acc(rng, TRAIN_SIZE), "val_loss": _loss(rng), "val_acc": final,
        "test_loss": _loss(rng), "test_acc": _acc(rng, VAL_SIZE), "best_val_acc": final,
        "best_val_loss": _loss(rng), "wall_s": float(rng.random() * 100),
        "train_s": float(rng.random() * 90), "eval_s": float(rng.random() * 9),
        "s_per_epoch": float(rng.random() * 9), "samples_per_s": float(rng.random() * 1e4),
        "params": 100_000, "train_size": TRAIN_SIZE, "val_size": VAL_SIZE, "test_size": VAL_SIZE,
        "start_time": 1.7e9 + i, "end_time": 1.7e9 + i + 100, "precision": "fp32",
        "step_ms_median": float(rng.random()), "step_ms_p90": float(rng.random()),
        "peak_rss_bytes": int(rng.integers(1e8, 1e9)), "param_bytes": 400_000,
        "flops_per_sample": 2_000_000, "batch_size": 128,
    }
    history = [{"run_id": run_id, "epoch": e, "step": 100 * e, "samples": 12800 * e,
                "elapsed_s": float(rng.random() * 100), "lr": float(lr),
                "train_loss": _loss(rng), "train_acc": _acc(rng, TRAIN_SIZE),
                "val_loss": _loss(rng), "val_acc": _acc(rng, VAL_SIZE),
                "test_loss": _loss(rng), "test_acc": _acc(rng, VAL_SIZE)}
               for e in range(evals)]
    return record, history


def write_runs(folder: Path, n: int, evals: int) -> float:
    store = ResultStore(folder)
    store.prepare()
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i, combo in enumerate(grid(n)):
        model, (label, name), lr, seed = combo
        record, history = synthetic_run(i, model, label, name, lr, seed, evals, rng)
        store.write(record, history)
    return time.perf_counter() - start


def disk_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def median_timed(fn, repeats: int = REPEATS):
    """The median seconds of `repeats` calls (a shared machine's one timing wanders by ±30 %),
    and the last call's value."""
    seconds, value = zip(*(timed(fn) for _ in range(repeats)))
    return statistics.median(seconds), value[-1]


def report_once(folder: Path) -> None:
    """What `cnnbench report DIR` does, rendered to a console nobody reads."""
    runs, history = load_results(folder)
    write_report(Report(runs, history), Console(file=io.StringIO(), width=120), "table")


def duckdb_query(folder: Path):
    import duckdb

    page = RESULTS_PAGE.read_text()
    sql = re.search(r"```sql\n(.*?)```", page[page.index("## Reading results"):],
                    re.S).group(1)
    return duckdb.sql(sql.replace("results/quickstart", str(folder))).fetchall()


def measure(folder: Path, n: int, state: str) -> None:
    t_load, (runs, history) = median_timed(lambda: load_results(folder))
    assert len(runs) == n and len(history) == n * EVALS, "every run, once"
    del runs, history
    t_report, _ = median_timed(lambda: report_once(folder))
    try:
        t_duck, rows = median_timed(lambda: duckdb_query(folder))
        duck = f"{t_duck:8.2f}"
    except ImportError:
        duck = "   (n/a)"
    print(f"{n:>7,}  {state:<12} {t_load:8.2f} {t_report:8.2f} {duck} "
          f"{disk_mb(folder):9.1f}", flush=True)


def main() -> None:
    global EVALS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,50000")
    parser.add_argument("--evals", type=int, default=11, help="history rows per run")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: tmp)")
    args = parser.parse_args()
    EVALS = args.evals
    base = args.dir or Path(tempfile.mkdtemp(prefix="results-scale-"))
    print(f"schema version {SCHEMA_VERSION}; {args.evals} evaluations per run; under {base}")
    print(f"{'runs':>7}  {'files':<12} {'load s':>8} {'report s':>8} {'duckdb s':>8} "
          f"{'disk MB':>9}")
    for n in (int(s) for s in args.sizes.split(",")):
        folder = base / f"n{n}"
        shutil.rmtree(folder, ignore_errors=True)
        t_write = write_runs(folder, n, args.evals)
        print(f"{n:>7,}  (written through ResultStore in {t_write:.1f} s)", flush=True)
        measure(folder, n, "parts")
        t_compact, _ = timed(lambda folder=folder: compact(folder))
        print(f"{n:>7,}  (compacted in {t_compact:.1f} s)", flush=True)
        measure(folder, n, "compacted")
        shutil.rmtree(folder)


EVALS = 11

if __name__ == "__main__":
    main()
