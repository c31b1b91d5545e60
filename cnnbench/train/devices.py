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
    """The one device a run gets, resolved once: `auto` → CUDA if present, else cpu; CUDA always
    with its index (`cuda` and `auto` → the current GPU, `cuda:0` unless CUDA_VISIBLE_DEVICES or
    a worker set another), since torch rejects an index-less device in `torch.cuda.set_device`
    and the row records which GPU ran. Asking for an absent device is a CnnbenchError."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise CnnbenchError(f"device {requested!r} is not a device; use auto, cpu, cuda, "
                            "cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise CnnbenchError(
                f"device {requested!r} asked for, but this machine has no CUDA device "
                f"(torch {torch.__version__}); use --device cpu or --device auto"
            )
        if device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise CnnbenchError(f"device {requested!r} asked for, but only "
                                f"{torch.cuda.device_count()} CUDA device(s) are visible "
                                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1}); use "
                                "--device cuda to take the current one")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise CnnbenchError("device 'mps' asked for, but MPS is not available here; use cpu")
    return device


def spreads_over_gpus(requested: str) -> bool:
    """Whether `requested` leaves the GPU open (`auto`, `cuda`): --workers then round-robin over
    every visible GPU instead of sharing the one resolved device."""
    return requested in ("auto", "cuda")


def use_device(device: torch.device) -> None:
    """Make `device` the current CUDA device of this process: kernels and events without an
    explicit device go there, and no context is opened on GPU 0 by a run on another GPU."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


def worker_devices(workers: int, device: torch.device, device_count: int, *,
                   spread: bool) -> tuple[list[str], str | None]:
    """The device of each of `workers` processes — on CUDA with `spread` (no index asked for),
    GPUs round-robin — and a warning when more workers than GPUs will share them (their timings
    then interfere). Every CUDA device named has its index."""
    if device.type != "cuda":
        return [str(device)] * workers, None
    if spread:
        devices = [f"cuda:{i % device_count}" for i in range(workers)]
        gpus = device_count
    else:
        devices = [str(device)] * workers
        gpus = 1
    if workers > gpus:
        return devices, (f"{workers} workers share {gpus} GPU(s): runs on one GPU slow each "
                         "other down, so their times are not those of a run alone")
    return devices, None
