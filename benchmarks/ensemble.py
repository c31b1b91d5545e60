"""Is an ensemble faster than a loop? K runs of one network trained two ways, side by side:

(a) sequential: K `Trainer`s, each taking its own optimizer step on its own batch in turn — what
    `execution: sequential` does, minus data loading and evaluation;
(b) ensemble: one `Ensemble.step` of the same K members (train/ensemble.py: parameters living
    stacked, one vmapped forward and backward, one fused optimizer update for all of them); a
    group of one trains as a plain run, so K=1 measures the plain step against itself.

Both take the same pre-drawn batches (data time is left out of both), after `--warmup` steps
each. Every repeat times both, the order flipping each repeat so drift in machine load hits
both; the figure is the median over repeats of the throughput ratio (b)/(a) — samples/s of all
K members together. The goals on one H100/H200 at batch 128: K = 8 ≥ 5× for keras_cnn (issue
18); K = 32 ≥ 10× for keras_cnn and resnet20, K = 1 ≥ 0.95× (issue 25).

    python benchmarks/ensemble.py                                  # cpu, and cuda when present
    python benchmarks/ensemble.py --devices cpu --steps 5 --repeats 2 --threads 1
    python benchmarks/ensemble.py --devices cuda --sizes 8 --models keras_cnn
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train.devices import resolve_device
from cnnbench.train.ensemble import Ensemble
from cnnbench.train.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _specs(model: str, size: int, args, device: str):
    """K runs of `model` on synthetic 3×32×32 images, at K log-spaced learning rates."""
    lrs = {"log": [1e-4, 1e-2], "num": size} if size > 1 else [1e-3]
    suite = validate_suite({
        "name": "ensemble-bench", "device": device, "probes": [],
        "dataset": {"name": "synthetic", "channels": 3, "image_size": 32, "num_classes": 10,
                    "train_size": args.batch * 2, "test_size": 10, "val_size": 0},
        "train": {"epochs": 1, "batch_size": args.batch,
                  **({"precision": args.precision} if args.precision != "fp32" else {}),
                  **({"graphs": True} if args.graphs else {})},
        "matrix": {"model": [model], "optimizer": [args.optimizer], "lr": lrs},
    })
    return expand(suite), suite


def measure(model: str, size: int, device: torch.device, args) -> tuple[float, float]:
    """Median samples/s over repeats of (a) sequential and (b) ensemble, all K members."""
    specs, suite = _specs(model, size, args, str(device))
    data = prepare_data(suite.dataset_config, device)
    trainers = [Trainer(spec, data) for spec in specs]
    ensemble = Ensemble(specs, data)
    batches = [next(data.train_batches(args.batch, t.generator)) for t in trainers]
    xs, ys = next(data.stacked_train_batches(args.batch, [m.trainer.generator
                                                          for m in ensemble.members]))
    # graphs: a run alone is an ensemble of one whose step is captured, as cnnbench trains it
    alone = [Ensemble([spec], data) for spec in specs] if args.graphs else []

    def sequential() -> None:
        if alone:
            for k, run in enumerate(alone):
                run.step(run.members, xs[k:k + 1], ys[k:k + 1])
            return
        for trainer, (x, y) in zip(trainers, batches):
            trainer.step(x, y)

    def vectorized() -> None:
        if size == 1:  # what `execution: ensemble` does with a group of one: the plain step
            sequential()
            return
        ensemble.step(ensemble.members, xs, ys)

    ensemble.base.train()
    for trainer in trainers:
        trainer.model.train()
    ways = {"sequential": sequential, "ensemble": vectorized}
    for fn in ways.values():  # warm-up: allocator, cuDNN autotuning, first-call costs
        for _ in range(args.warmup):
            fn()
    _sync(device)
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for repeat in range(args.repeats):
        for name in list(ways)[::1 if repeat % 2 == 0 else -1]:
            start = time.perf_counter()
            for _ in range(args.steps):
                ways[name]()
            _sync(device)
            rates[name].append(size * args.batch * args.steps / (time.perf_counter() - start))
    return statistics.median(rates["sequential"]), statistics.median(rates["ensemble"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", "--device", default=None,
                        help="comma-separated (default: cpu, and cuda when present)")
    parser.add_argument("--models", default="keras_cnn,resnet20")
    parser.add_argument("--sizes", default="1,2,4,8,16", help="ensemble sizes K")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp64"])
    parser.add_argument("--graphs", action="store_true",
                        help="graphs: true for both ways (CUDA; at least 4 warm-up steps: 3 "
                             "eager, then the capture)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 keeps a loaded machine's noise down)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = (args.devices.split(",") if args.devices
               else ["cpu", *(["cuda"] if torch.cuda.is_available() else [])])
    print(f"{args.optimizer}, batch {args.batch}, {args.precision}"
          f"{', CUDA graphs' if args.graphs else ''}, {args.steps} steps × "
          f"{args.repeats} repeats (after {args.warmup} warm-up), {torch.get_num_threads()} "
          f"CPU threads; samples/s of all K members together")
    print(f"{'device':<8} {'model':<10} {'K':>3} {'sequential/s':>13} {'ensemble/s':>11} "
          f"{'ratio':>6}")
    goal = []  # the figure, last: gpu_check.sh's summary shows the last line
    for name in devices:
        device = resolve_device(name)
        label = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        for model in args.models.split(","):
            for size in (int(k) for k in args.sizes.split(",")):
                seq, ens = measure(model, size, device, args)
                print(f"{device.type:<8} {model:<10} {size:>3} {seq:>13,.0f} {ens:>11,.0f} "
                      f"{ens / seq:>6.2f}", flush=True)
                if size == max(int(k) for k in args.sizes.split(",")):
                    goal.append(f"{model} {label} {ens / seq:.2f}×")
        print(f"({name}: {label})")
    if goal:
        print(f"largest K, batch {args.batch}, ensemble/sequential: {', '.join(goal)} "
              "(goal on one H100/H200 at batch 128, K=32: ≥ 10×)")


if __name__ == "__main__":
    main()
