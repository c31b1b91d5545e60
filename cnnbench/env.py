"""The environment a run happened in, recorded beside its results."""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys

import torch


@functools.cache
def git_commit() -> str | None:
    """The commit of the git checkout we run in, if any."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


@functools.cache
def _static() -> dict[str, str | None]:
    return {
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": sys.version.split()[0],
        "host": socket.gethostname(),
        "git_commit": git_commit(),
    }


def environment(device: torch.device) -> dict[str, str | int | None]:
    return {**_static(), "device_name": device_name(device),
            "torch_threads": torch.get_num_threads()}


def resolve_device(requested: str) -> torch.device:
    """`auto` → cuda if present, else cpu. Asking for an absent device is a CnnbenchError."""
    from cnnbench.errors import CnnbenchError

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
