"""How a model executes: precision (fp32, bf16/fp16 autocast, or fp64 weights), channels_last,
torch.compile.

Shared by `engine` (suite keys train.precision, train.channels_last, train.compile) and
`profile`, so that a profile measures exactly what a run trains.
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


def autocast(device: torch.device, precision: str):
    """The forward pass's context: autocast to bf16/fp16, or nothing for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


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
