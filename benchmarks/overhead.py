"""Does the harness slow training down? The same work two ways, alternating, in one process.

(a) a minimal hand-written PyTorch loop: the training set normalised once and kept as one
    tensor, shuffled index batches, the same model, optimizer, seed and evaluation (val and test
    before training and after every epoch);
(b) `cnnbench.train.engine.train` on the same RunSpec, with the default probes (time, memory,
    flops).

Each repeat times both (the order flips every repeat, so drift in machine load hits both);
the figure is the median over repeats of the paired ratio (b)/(a). Target: ≤ 1.03. Wall time is
what counts; the process's CPU time (all threads) is printed too, because on a machine shared
with other work it moves far less with the others' load than wall time does. Last, one
training step alone, both ways, interleaved many times: the harness's per-step cost without
the noise of whole runs.

    python benchmarks/overhead.py          # keras_cnn, Adam, mnist-mini, batch 128, 5 epochs
    python benchmarks/overhead.py --epochs 1 --repeats 3 --device cuda
    python benchmarks/overhead.py --model mlp     # tiny steps: any per-step harness cost shows
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnbench.execute.local import prepare_data
from cnnbench.models import create_model
from cnnbench.suite import expand, validate_suite
from cnnbench.train.devices import resolve_device
from cnnbench.train.engine import train
from cnnbench.train.trainer import Trainer


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _evaluate(model, x, y, batch: int) -> tuple[float, float]:
    model.eval()
    loss, correct = torch.zeros((), device=x.device), torch.zeros((), device=x.device)
    for i in range(0, len(y), batch):
        logits = model(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum")
        correct += (logits.argmax(1) == y[i:i + batch]).sum()
    return loss.item() / len(y), correct.item() / len(y)


def hand_written(spec, data) -> None:
    """The loop a careful person writes by hand."""
    device = data.device
    x = data.normalize(data.train.x)
    y = data.train.y
    val_x, test_x = data.normalize(data.val.x), data.normalize(data.test.x)
    channels, size, _ = data.shape
    torch.manual_seed(spec.seed)
    model = create_model(spec.model, in_channels=channels, num_classes=data.num_classes,
                         image_size=size).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.lr)
    generator = torch.Generator(device=device)
    generator.manual_seed(spec.seed)
    batch, eval_batch = spec.batch_size, spec.train["eval_batch_size"]
    _evaluate(model, val_x, data.val.y, eval_batch)
    _evaluate(model, test_x, data.test.y, eval_batch)
    for _ in range(spec.train["epochs"]):
        model.train()
        order = torch.randperm(len(y), generator=generator, device=device)
        for i in range(0, len(y), batch):
            idx = order[i:i + batch]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
        _evaluate(model, val_x, data.val.y, eval_batch)
        _evaluate(model, test_x, data.test.y, eval_batch)


def harness(spec, data) -> None:
    result = train(spec, data)
    assert result.summary["status"] == "ok", result.summary["message"]


def step_costs(spec, data, *, rounds: int = 15, steps: int = 3) -> tuple[float, float]:
    """Median CPU ms of one training step: the engine's `Trainer.step` (closure, loss and
    accuracy sums, schedule) and the hand-written one, on the same model and batch."""
    trainer = Trainer(spec, data)
    generator = torch.Generator(device=data.device)
    generator.manual_seed(0)
    x, y = next(data.train_batches(spec.batch_size, generator))

    def hand() -> None:
        trainer.optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(trainer.model(x), y).backward()
        trainer.optimizer.step()

    costs: dict[str, list[float]] = {"harness": [], "hand": []}
    for _ in range(rounds):
        for name, fn in (("harness", lambda: trainer.step(x, y)), ("hand", hand)):
            start = time.process_time()
            for _ in range(steps):
                fn()
            _sync(data.device)
            costs[name].append((time.process_time() - start) / steps * 1e3)
    return statistics.median(costs["harness"]), statistics.median(costs["hand"])


def timed(fn, spec, data) -> tuple[float, float]:
    """Wall and process-CPU seconds of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn(spec, data)
    _sync(data.device)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="keras_cnn")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 keeps a loaded machine's noise down)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    suite = validate_suite({
        "name": "overhead", "dataset": "mnist-mini", "device": args.device,
        "train": {"epochs": args.epochs, "batch_size": 128},
        "matrix": {"model": [args.model], "optimizer": ["adam"], "lr": [1e-3]},
    })
    spec = expand(suite)[0]
    data = prepare_data(suite.dataset_config, device)
    print(f"{args.model}, Adam, mnist-mini, batch 128, {args.epochs} epoch(s), {device}, "
          f"{torch.get_num_threads()} threads, probes {list(spec.probes)}")
    hand_written(spec, data)  # warm-up: allocator, kernels, first-call costs on both paths
    wall_ratios, cpu_ratios = [], []
    for repeat in range(args.repeats):
        ways = [("a", hand_written), ("b", harness)]
        t = {name: timed(fn, spec, data) for name, fn in ways[::1 if repeat % 2 == 0 else -1]}
        wall_ratios.append(t["b"][0] / t["a"][0])
        cpu_ratios.append(t["b"][1] / t["a"][1])
        print(f"repeat {repeat + 1}: wall (a) {t['a'][0]:.2f} s (b) {t['b'][0]:.2f} s "
              f"ratio {wall_ratios[-1]:.3f} | CPU (a) {t['a'][1]:.2f} s (b) {t['b'][1]:.2f} s "
              f"ratio {cpu_ratios[-1]:.3f}", flush=True)
    print(f"median (b)/(a) over {args.repeats} repeats: wall {statistics.median(wall_ratios):.3f}"
          f", CPU time {statistics.median(cpu_ratios):.3f}")
    harness_ms, hand_ms = step_costs(spec, data)
    print(f"one training step, median CPU time: harness {harness_ms:.2f} ms, hand-written "
          f"{hand_ms:.2f} ms, ratio {harness_ms / hand_ms:.3f}")


if __name__ == "__main__":
    main()
