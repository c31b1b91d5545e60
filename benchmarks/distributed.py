"""Data-parallel runs side by side in one process tree: the same suite trained by one process,
then each run over N processes (`cnnbench run --nproc N`: gloo on a CPU, NCCL on CUDA). It
prints samples/s per world size, the scaling efficiency (samples/s at N ÷ (N × samples/s at 1)),
and how far each world size's losses are from one process's (the lecture's claim: without
BatchNorm the same trajectory, to float rounding; with it, each rank normalises its own slice;
dropout too draws its masks per slice, which is why the default nets have none).

    python benchmarks/distributed.py                          # CPU: world sizes 1, 2
    python benchmarks/distributed.py --device cuda --sizes 1,2,4,8 --models resnet20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import yaml

import cnnbench
from cnnbench.render.text import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def _suite(args, model: str) -> dict:
    return {"name": f"ddp-{model}", "dataset": {"name": args.dataset, "val_size": 500},
            "device": args.device, "probes": ["time"],
            "train": {"epochs": args.epochs, "batch_size": args.batch},
            "matrix": {"model": [model], "optimizer": ["sgd"], "lr": [0.05]}}


def train(args, model: str, world: int, folder: Path) -> pd.Series:
    """The suite's one run at `world` processes (1: no distribution at all); its row."""
    suite = folder / f"{model}.yaml"
    suite.write_text(yaml.safe_dump(_suite(args, model)))
    out = folder / f"{model}-{world}"
    command = [sys.executable, "-m", "cnnbench", "run", str(suite), "--out", str(out)]
    if world > 1:
        command += ["--nproc", str(world)]
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise SystemExit(f"world size {world} failed:\n{done.stderr[-3000:]}")
    runs, _ = cnnbench.load_results(out)
    return runs.iloc[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,2", help="world sizes, comma-separated")
    parser.add_argument("--models", default="lenet5,resnet20",
                        help="a net with neither BatchNorm nor dropout, and one with BatchNorm")
    parser.add_argument("--dataset", default="mnist-mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128, help="the global batch")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    lines = []
    with tempfile.TemporaryDirectory(prefix="cnnbench-ddp-") as tmp:
        for model in args.models.split(","):
            rows = {world: train(args, model, world, Path(tmp)) for world in sizes}
            one = rows[sizes[0]]
            for world, row in rows.items():
                efficiency = row["samples_per_s"] / (world / sizes[0] * one["samples_per_s"])
                lines.append({
                    "model": model, "world": world,
                    "rank batch": args.batch // world, "samples/s": f"{row['samples_per_s']:.0f}",
                    "efficiency": f"{efficiency:.2f}",
                    "|Δ train_loss|": f"{abs(row['train_loss'] - one['train_loss']):.1e}",
                    "|Δ test_acc|": f"{abs(row['test_acc'] - one['test_acc']):.4f}",
                    "timing": row.get("timing")})
    print(f"device {args.device}, {os.cpu_count()} logical CPUs, dataset {args.dataset}, "
          f"global batch {args.batch}, {args.epochs} epoch(s); Δ against world size {sizes[0]}")
    print(markdown_table(list(lines[0]), [[str(v) for v in line.values()] for line in lines],
                         left=["timing"]))


if __name__ == "__main__":
    main()
