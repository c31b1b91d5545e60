"""Which device a run gets (`auto`, `cpu`, `cuda[:N]`, `mps`) and what that device is called."""

from __future__ import annotations

import platform

import torch

from cnnbench.errors import CnnbenchError


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def resolve_device(requested: str) -> torch.device:
    """`auto` → cuda if present, else cpu. Asking for an absent device is a CnnbenchError."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnbenchError(
                f"device {requested!r} asked for, but this machine has no CUDA device "
                f"(torch {torch.__version__}); use --device cpu or --device auto"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CnnbenchError(f"device {requested!r} asked for, but only "
                                f"{torch.cuda.device_count()} CUDA device(s) are visible")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CnnbenchError("device 'mps' asked for, but MPS is not available here; use cpu")
    return device


def use_device(device: torch.device) -> None:
    """Make `device` the current CUDA device of this process: kernels and events without an
    explicit device go there, and no context is opened on GPU 0 by a run on another GPU."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def worker_devices(workers: int, device: torch.device,
                   device_count: int) -> tuple[list[str], str | None]:
    """The device of each of `workers` processes — on CUDA without an index, GPUs round-robin —
    and a warning when more workers than GPUs will share them (their timings then interfere)."""
    if device.type != "cuda":
        return [str(device)] * workers, None
    if device.index is not None:
        devices = [str(device)] * workers
        gpus = 1
    else:
        devices = [f"cuda:{i % device_count}" for i in range(workers)]
        gpus = device_count
    if workers > gpus:
        return devices, (f"{workers} workers share {gpus} GPU(s): runs on one GPU slow each "
                         "other down, so their times are not those of a run alone")
    return devices, None
