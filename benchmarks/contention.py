"""Does cnnbench notice when a run shares the machine? The same small suite twice, in one
process tree: alone, and beside a CPU burner on every logical CPU (processes that spin). It
prints the share of runs marked `contended` each time (goal: 0% alone, 100% beside the burner),
the CPU share the runs got, and the s/epoch spread that a report would otherwise have shown as
the optimizers' cost.

    python benchmarks/contention.py                 # keras_cnn and mlp on mnist-mini, 1 epoch
    python benchmarks/contention.py --epochs 2 --lrs 0.01,0.1
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

import cnnbench
from cnnbench.suite import validate_suite


def _spin() -> None:
    while True:
        pass


def _suite(args) -> dict:
    return {"name": "contention", "dataset": {"name": "mnist-mini"}, "device": "cpu",
            "train": {"epochs": args.epochs, "batch_size": 128}, "probes": ["time"],
            "matrix": {"model": args.models.split(","), "optimizer": args.optimizers.split(","),
                       "lr": [float(v) for v in args.lrs.split(",")]}}


def run(args, out: Path, burners: int) -> pd.DataFrame:
    """The suite, beside `burners` spinning processes; its rows."""
    context = multiprocessing.get_context("spawn")
    spinning = [context.Process(target=_spin, daemon=True) for _ in range(burners)]
    for proc in spinning:
        proc.start()
    time.sleep(0.5 if burners else 0)  # the burners are on their cores before the first run
    try:
        cnnbench.run_suite(validate_suite(_suite(args)), out=out, rerun=True)
    finally:
        for proc in spinning:
            proc.kill()
            proc.join()
    runs, _ = cnnbench.load_results(out)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="keras_cnn,mlp")
    parser.add_argument("--optimizers", default="sgd,adam")
    parser.add_argument("--lrs", default="0.01")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--burners", type=int, default=os.cpu_count() or 1,
                        help="spinning processes in the second pass (default: one per CPU)")
    args = parser.parse_args()
    print(f"{args.models} × {args.optimizers} × lr {args.lrs}, {args.epochs} epoch(s) on "
          f"mnist-mini; {os.cpu_count()} logical CPUs")
    print(f"{'pass':<16} {'runs':>4} {'contended':>10} {'cpu share':>16} "
          f"{'s/epoch per model (min–max)':>40}")
    with tempfile.TemporaryDirectory() as folder:
        for label, burners in (("alone", 0), (f"beside {args.burners} burners", args.burners)):
            runs = run(args, Path(folder) / label.replace(" ", "-"), burners)
            marked = (runs["timing"] == "contended").mean()
            shares = runs["cpu_share"].astype(float)
            spread = "; ".join(
                f"{model} {group.min():.2f}–{group.max():.2f}"
                for model, group in runs.groupby("model")["s_per_epoch"])
            print(f"{label:<16} {len(runs):>4} {marked:>10.0%} "
                  f"{statistics.median(shares):>7.2f} (min {shares.min():.2f}) {spread:>40}",
                  flush=True)
            for reason in sorted(set(runs["timing_reason"].dropna()) - {""})[:1]:
                print(f"  e.g. {reason}")


if __name__ == "__main__":
    main()
