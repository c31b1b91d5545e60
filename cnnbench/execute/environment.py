"""The environment a run happened in, recorded beside its results."""

from __future__ import annotations

import functools
import socket
import subprocess
import sys

import torch

from cnnbench.train.devices import device_name
from cnnbench.version import __version__


@functools.cache
def git_commit() -> str | None:
    """The commit of the git checkout we run in, if any."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@functools.cache
def _static() -> dict[str, str | None]:
    return {
        "cnnbench_version": __version__,
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "python_version": sys.version.split()[0],
        "host": socket.gethostname(),
        "git_commit": git_commit(),
    }


def environment(device: torch.device) -> dict[str, str | int | None]:
    return {**_static(), "device_name": device_name(device),
            "torch_threads": torch.get_num_threads()}
