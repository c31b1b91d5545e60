"""How a model executes: precision (fp32, bf16/fp16 autocast, or fp64 weights), channels_last,
torch.compile, and the CUDA defaults (TF32, cuDNN autotuning).

Shared by `engine` (suite keys train.precision, train.channels_last, train.compile, train.tf32)
and `profile`, so that a profile measures exactly what a run trains.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from cnnbench.suite.schema import Precision

# the autocast dtype of each word of the suite's vocabulary (suite/schema.py PRECISIONS)
DTYPES: dict[Precision, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16,
                                               "fp16": torch.float16, "fp64": None}


def param_dtype(precision: str) -> torch.dtype:
    """The dtype of weights, inputs and loss sums: float64 for fp64 (reference runs, where two
    ways of computing the same run agree to 1e-12, not float32's 1e-7), else float32."""
    return torch.float64 if precision == "fp64" else torch.float32


def autocast(device: torch.device, precision: str, *, cache: bool = True):
    """The forward pass's context: autocast to bf16/fp16, or nothing for fp32. `cache=False`
    inside a captured CUDA graph, as torch asks (its cast cache would outlive the capture)."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype, cache_enabled=cache)


def has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def resolve_channels_last(requested: bool | None, device: torch.device, model: nn.Module,
                          precision: str, *, stacked: bool = False) -> bool:
    """The suite's `channels_last`, else the default: on for a conv net trained alone on CUDA
    (NHWC is the layout cuDNN's tensor-core kernels take: ResNet-50 bf16 trained 2.0× faster
    with it on an H200, `cnnbench profile` rows), off on other devices, in fp64 (no tensor
    cores) and for an ensemble's members (`vmap` runs them in the default layout)."""
    if requested is not None:
        return requested
    return (device.type == "cuda" and precision != "fp64" and not stacked
            and has_conv(model))


def use_cuda_defaults(device: torch.device, tf32: bool | None) -> bool | None:
    """Set this process's CUDA math for a run: cuDNN autotuning (each new input shape tuned
    once), and TF32 tensor cores for fp32 matmuls and convolutions unless the suite says
    `tf32: false` (TF32 keeps fp32's range with a 10-bit mantissa). Returns whether TF32 is on;
    None off CUDA, where neither applies."""
    if device.type != "cuda":
        return None
    torch.backends.cudnn.benchmark = True
    on = tf32 is not False
    torch.set_float32_matmul_precision("high" if on else "highest")
    torch.backends.cudnn.allow_tf32 = on
    return on


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling against gradient underflow; bf16 has fp32's range and does not."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


COMPILE_BACKEND = "inductor"  # torch.compile's default; tests swap in a counting backend


class _DynamicBatch(nn.Module):
    """Calls a compiled module with the batch dimension marked dynamic, so that the last,
    smaller batch of an epoch (and of an evaluation) reuses the graph instead of recompiling."""

    def __init__(self, compiled: nn.Module) -> None:
        super().__init__()
        self.compiled = compiled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return self.compiled(x)


def prepare_model(model: nn.Module, *, channels_last: bool = False, compile: bool = False,
                  dynamic_batch: bool = False) -> nn.Module:
    """The module to call: `model` in channels_last layout and/or compiled (same parameters).

    Compiling first resets dynamo: its caches and their recompile limit (8) belong to the model
    class's code, shared by every run in the process, and past the limit a run would silently
    run eager. `dynamic_batch` compiles for any batch size (runs, whose last batch is smaller);
    without it every new batch size compiles its own graph (profile: one size per phase)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not compile:
        return model
    torch._dynamo.reset()
    compiled = torch.compile(model, backend=COMPILE_BACKEND)
    return _DynamicBatch(compiled) if dynamic_batch else compiled


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
