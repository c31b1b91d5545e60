"""`cnnbench profile`: the pure speed of one model on synthetic data, in the manner of timm's
benchmark script.

For each batch size and phase (inference: forward under no_grad in eval mode; train: forward,
cross-entropy, backward and an SGD-momentum step), `warmup` untimed steps run first, then
`repeats` timed steps: per-step CPU clock reads, or on CUDA per-step events read once at the
end. Peak memory is reset before each phase, with the previous phase's gradients freed and the
allocator's cache emptied; it is the phase's peak above what was allocated when the phase began
(the model, the optimizer's state, the batch: `cuda_baseline_bytes`). Shapes are fixed, so cuDNN
autotunes its kernels (`cudnn.benchmark`) during the warm-up steps. Rows are tidy: one per
(batch size, phase).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.table import Table

from cnnbench.errors import CnnbenchError
from cnnbench.models import count_parameters, create_model
from cnnbench.models.shapes import parse_input
from cnnbench.render.numbers import DASH, fmt_bytes, fmt_flops, fmt_si
from cnnbench.results.schema import Status
from cnnbench.train.devices import device_name, use_device
from cnnbench.train.flops import count_flops
from cnnbench.train.graphs import graph_step, graphs_supported
from cnnbench.train.precision import (
    autocast,
    grad_scaler,
    param_dtype,
    prepare_model,
    resolve_channels_last,
    to_layout,
    use_cuda_defaults,
)
from cnnbench.train.probes import MemoryProbe, StepTimer, peak_flops_per_s, throughput

WARMUP = 5
REPEATS = 20


def input_for(model: str, *, dataset: str | None = None, input: str | None = None,
              data_dir: str | None = None) -> tuple[tuple[int, int, int], int]:
    """The input shape and class count to profile with: `--input` (with a registered model's
    native class count, else 10), else the dataset's, else the registered model's native input."""
    from cnnbench.data import load_dataset
    from cnnbench.imports import is_import_path
    from cnnbench.models.registry import MODEL_INFO, MODELS
    from cnnbench.suite import DatasetConfig

    if dataset is not None and input is not None:
        raise CnnbenchError("give --dataset or --input, not both")
    if input is not None:
        info = MODEL_INFO.get(model)
        return parse_input(input), info.native_classes if info else 10
    if dataset is not None:
        arrays = load_dataset(DatasetConfig(name=dataset), data_dir)
        return arrays.shape, arrays.num_classes
    if is_import_path(model):
        raise CnnbenchError(f"model {model!r} is a user model: give --input CxHxW or --dataset")
    MODELS.get(model)  # an unknown name raises, listing close matches
    info = MODEL_INFO[model]
    return info.native_input, info.native_classes


def profile_model(model: str, *, input_shape: tuple[int, int, int], num_classes: int,
                  batch_sizes: list[int], device: torch.device, precision: str = "fp32",
                  channels_last: bool | None = None, compile: bool = False, graphs: bool = False,
                  warmup: int = WARMUP, repeats: int = REPEATS) -> list[dict[str, Any]]:
    """One row per (batch size, phase): samples/s, step-time median and IQR, peak memory,
    FLOPs per step and achieved FLOP/s (and MFU on GPUs in the peak table). The defaults are a
    run's: `channels_last` None takes a run's default layout, and on CUDA TF32 and cuDNN
    autotuning (fixed shapes: tuned in the warm-up steps) are on."""
    _check_graphs(graphs, device, precision, compile)
    torch.manual_seed(0)
    use_device(device)  # `cuda:1`: its kernels and its timing events on GPU 1
    tf32 = use_cuda_defaults(device, None)
    net = create_model(model, in_channels=input_shape[0], num_classes=num_classes,
                       image_size=input_shape[1]).to(device, param_dtype(precision))
    channels_last = resolve_channels_last(channels_last, device, net, precision)
    forward_flops, train_flops = count_flops(net, input_shape)
    params = count_parameters(net)
    runner = prepare_model(net, channels_last=channels_last, compile=compile)
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    scaler = grad_scaler(device, precision)
    peak = peak_flops_per_s(device_name(device), precision)

    def infer(x: torch.Tensor, y: torch.Tensor) -> None:
        with torch.no_grad(), autocast(device, precision):
            runner(x)

    def train(x: torch.Tensor, y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(runner(x), y)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    rows = []
    for batch in batch_sizes:
        # graphs: the training step (forward, backward, SGD) captured once per batch size after
        # its warm-up steps, then replayed: the launch-free speed of the same step
        captured = graph_step(train, device) if graphs else train
        x = to_layout(torch.randn(batch, *input_shape, device=device,
                                  dtype=param_dtype(precision)), channels_last)
        y = torch.randint(0, num_classes, (batch,), device=device)
        for phase, step, flops in (("inference", infer, forward_flops),
                                   ("train", captured, train_flops)):
            net.train(phase == "train")
            optimizer.zero_grad(set_to_none=True)  # the last phase's gradients: not this one's
            row = {"model": model, "params": params, "phase": phase, "batch_size": batch,
                   "input": "x".join(map(str, input_shape)), "precision": precision,
                   "channels_last": channels_last, "compile": compile,
                   "graphs": graphs and phase == "train", "tf32": tf32,
                   "device": str(device),
                   "device_name": device_name(device)}
            try:
                row.update(_time_steps(step, x, y, device, warmup, repeats))
            except torch.OutOfMemoryError:
                row["status"] = Status.OOM.value
                torch.cuda.empty_cache()
                rows.append(row)
                continue
            step_s = row["step_ms_median"] / 1e3
            row.update({"status": Status.OK.value, "flops_per_step": flops * batch,
                        **throughput(flops * batch, step_s, peak)})
            rows.append(row)
        del x, y  # freed before the next batch size's are allocated
    return rows


def _check_graphs(graphs: bool, device: torch.device, precision: str, compile: bool) -> None:
    if not graphs:
        return
    if not graphs_supported(device):
        raise CnnbenchError(f"--graphs captures CUDA graphs; the device is {device}: use "
                            "--device cuda, or drop --graphs")
    if precision == "fp16" or compile:
        raise CnnbenchError("--graphs cannot capture " + ("fp16's GradScaler (use --precision "
                            "bf16)" if precision == "fp16" else "a compiled model (drop "
                            "--compile)"))


def _time_steps(step, x: torch.Tensor, y: torch.Tensor, device: torch.device, warmup: int,
                repeats: int) -> dict[str, Any]:
    memory = MemoryProbe(device)
    memory.start()
    for _ in range(warmup):
        step(x, y)
    timer = StepTimer(device, warmup_steps=0)
    for _ in range(repeats):
        timer.data_start()
        timer.compute_start()
        step(x, y)
    timer.data_start()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    timer.epoch_end()
    q25, q75 = np.percentile(timer.step_ms, [25, 75])
    return {"samples_per_s": len(x) * repeats / (sum(timer.step_ms) / 1e3),
            "step_ms_median": statistics.median(timer.step_ms),
            "step_ms_iqr": float(q75 - q25), **memory.summary()}


def profile_table(rows: list[dict[str, Any]]) -> Table:
    first = rows[0] if rows else {}
    table = Table(title=f"{first.get('model', '')} ({first.get('params', 0):,} parameters) on "
                        f"{first.get('device_name', '')}, "
                        f"input {first.get('input', '')}, {first.get('precision', '')}"
                        + (", channels_last" if first.get("channels_last") else "")
                        + (", compiled" if first.get("compile") else "")
                        + (", CUDA graphs (train)" if any(r.get("graphs") for r in rows)
                           else ""))
    cuda = first.get("device", "").startswith("cuda")
    columns = ["phase", "batch", "samples/s", "step ms", "IQR ms", "FLOPs/step", "FLOP/s", "MFU",
               "peak CUDA alloc" if cuda else "peak RSS"]
    for column in columns:
        table.add_column(column, justify="left" if column == "phase" else "right")
    for row in rows:
        if row["status"] != Status.OK:
            table.add_row(row["phase"], str(row["batch_size"]), row["status"],
                          *[""] * (len(columns) - 3))
            continue
        mfu = row["mfu"]
        table.add_row(row["phase"], str(row["batch_size"]), f"{row['samples_per_s']:.1f}",
                      f"{row['step_ms_median']:.2f}", f"{row['step_ms_iqr']:.2f}",
                      fmt_flops(row["flops_per_step"]),
                      fmt_si(row["achieved_flops_per_s"], "FLOP/s"),
                      DASH if mfu is None else f"{100 * mfu:.1f}%",
                      fmt_bytes(row["peak_cuda_allocated_bytes" if cuda else "peak_rss_bytes"]))
    return table


def write_rows(rows: list[dict[str, Any]], out: Path) -> None:
    """The tidy rows as parquet or csv, chosen by the file's suffix."""
    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
