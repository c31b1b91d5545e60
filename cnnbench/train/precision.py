"""How a model executes: precision (fp32, or bf16/fp16 autocast), channels_last, torch.compile.

Shared by `engine` (suite keys train.precision, train.channels_last, train.compile) and
`profile`, so that a profile measures exactly what a run trains.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from cnnbench.suite.schema import Precision

# one dtype per word of the suite's vocabulary (suite/schema.py PRECISIONS)
DTYPES: dict[Precision, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16,
                                               "fp16": torch.float16}


def autocast(device: torch.device, precision: str):
    """The forward pass's context: autocast to bf16/fp16, or nothing for fp32."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """fp16 needs loss scaling against gradient underflow; bf16 has fp32's range and does not."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def prepare_model(model: nn.Module, *, channels_last: bool = False,
                  compile: bool = False) -> nn.Module:
    """The module to call: `model` in channels_last layout and/or compiled (same parameters)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if compile else model


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x
