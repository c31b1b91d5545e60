"""How many aten operations one training step dispatches: K sequential runs against one ensemble
of K. On a GPU each operation is at least one kernel launch, and a step of a small network is
launch-bound (issue 25: a ResNet-20 step took 10 ms on an H200 for 0.27 M parameters), so this
count is the CPU-side figure CI can watch for the GPU's throughput.

Counted with a `TorchDispatchMode` on CPU (the same operations dispatch on CUDA), after one
untimed step that creates the optimizers' state. With the fused update the ensemble's count per
step does not grow with K (the goal: K=32 within 1.5× of K=1); the sequential runs' grows K-fold.

    python benchmarks/launches.py                       # K = 1, 2, 4, 8, 16, 32
    python benchmarks/launches.py --model resnet20 --optimizer momentum --sizes 1,8,32
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train.ensemble import Ensemble
from cnnbench.train.trainer import Trainer


class _Counter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def count_ops(fn: Callable[[], object]) -> int:
    """The aten operations `fn()` dispatches (views and in-place ones included)."""
    with _Counter() as counter:
        fn()
    return counter.count


def _specs(model: str, optimizer: str, size: int, batch: int):
    suite = validate_suite({
        "name": "launches", "device": "cpu", "probes": [],
        "dataset": {"name": "synthetic", "channels": 3, "image_size": 32, "num_classes": 10,
                    "train_size": batch * 2, "test_size": 10, "val_size": 0},
        "train": {"epochs": 1, "batch_size": batch},
        "matrix": {"model": [model], "optimizer": [optimizer],
                   "lr": {"log": [1e-4, 1e-2], "num": size} if size > 1 else [1e-3]},
    })
    return expand(suite), suite


def ops_per_step(model: str, optimizer: str, size: int, batch: int) -> tuple[int, int]:
    """(K sequential runs' operations for one step each, one ensemble step of K members)."""
    specs, suite = _specs(model, optimizer, size, batch)
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    trainers = [Trainer(spec, data) for spec in specs]
    batches = [next(data.train_batches(batch, t.generator)) for t in trainers]

    def sequential() -> None:
        for trainer, (x, y) in zip(trainers, batches):
            trainer.step(x, y)

    ensemble = Ensemble(specs, data)
    xs, ys = next(data.stacked_train_batches(batch, [m.trainer.generator
                                                     for m in ensemble.members]))

    def vectorized() -> None:
        ensemble.step(ensemble.members, xs, ys)

    sequential(), vectorized()  # the optimizers' state is created on the first step
    return count_ops(sequential), count_ops(vectorized)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="keras_cnn")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--sizes", default="1,2,4,8,16,32", help="ensemble sizes K")
    parser.add_argument("--batch", type=int, default=8, help="small: the count does not depend "
                        "on it, the time to count does")
    args = parser.parse_args()
    sizes = [int(k) for k in args.sizes.split(",")]
    print(f"{args.model}, {args.optimizer}, batch {args.batch}: aten operations per training "
          "step (CPU dispatch; each one is a kernel launch or more on a GPU)")
    print(f"{'K':>3} {'K sequential':>13} {'ensemble of K':>14} {'ensemble/K=1':>13}")
    first = None
    for size in sizes:
        sequential, ensemble = ops_per_step(args.model, args.optimizer, size, args.batch)
        first = first or ensemble
        print(f"{size:>3} {sequential:>13,} {ensemble:>14,} {ensemble / first:>12.2f}×",
              flush=True)
    print(f"ensemble ops/step K={sizes[-1]} vs K={sizes[0]}: {ensemble / first:.2f}× "
          "(goal ≤ 1.5)")


if __name__ == "__main__":
    main()
