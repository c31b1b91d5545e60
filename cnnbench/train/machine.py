"""What a run got of the machine it trained on, and whether its times can be trusted.

Speed is only the optimizer's or the network's when the run had the machine to itself. While it
trains a run records its process's CPU time against the training loop's wall time. Its torch
threads ask for `threads × wall` of CPU, and a share well below that means other processes took
their cores: on a 2-core machine with a CPU burner on each core the share fell from 1.00 to 0.49
and the same steps took 7–10× longer (OpenMP threads waiting for a descheduled sibling). It also
records the machine's load average at the start and end, its logical CPUs and, on CUDA, the
other processes on its GPU (NVML, through `nvidia-ml-py` where installed).

`timing` is `contended` when the share fell below `CONTENDED_SHARE` on a CPU (over a training
loop of `JUDGED_S` or more), or another process held memory on the GPU; `clean` otherwise. The
load average is a 1-minute mean that lags by minutes, so it explains a verdict but does not
make one.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

CONTENDED_SHARE = 0.8  # of the CPU time the run's threads asked for, on a CPU device
JUDGED_S = 0.05  # a shorter training loop is mostly its threads waking up: not judged


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return None


def gpu_neighbours(device: torch.device) -> tuple[int, int] | None:
    """(count, bytes) of the other processes holding memory on the run's GPU, by NVML; None
    without `nvidia-ml-py`, off CUDA, or where NVML cannot tell."""
    if device.type != "cuda":
        return None
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            index = device.index if device.index is not None else torch.cuda.current_device()
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # pynvml.NVMLError and its kin: a driver or container that says nothing
        return None
    others = [p for p in processes if p.pid != os.getpid()]
    return len(others), sum(int(p.usedGpuMemory or 0) for p in others)


class MachineProbe:
    """The training loop's wall and CPU time (`start`/`stop` around each epoch's loop) and the
    machine around it; shared by an ensemble's members."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.threads = torch.get_num_threads()
        self.logical_cpus = os.cpu_count()
        self.load_start = _load()
        self.wall_s = self.cpu_s = 0.0
        self._since: tuple[float, float] | None = None

    def start(self) -> None:
        self._since = (time.perf_counter(), time.process_time())

    def stop(self) -> None:
        if self._since is not None:
            wall, cpu = self._since
            self.wall_s += time.perf_counter() - wall
            self.cpu_s += time.process_time() - cpu
            self._since = None

    @property
    def cpu_share(self) -> float | None:
        """CPU time over what the threads asked for: 1 = every thread had a core throughout."""
        return self.cpu_s / (self.wall_s * self.threads) if self.wall_s > 0 else None

    def columns(self) -> dict[str, Any]:
        """The `runs` columns: what the run got, and its `timing` verdict with the reason."""
        load_end = _load()
        neighbours = gpu_neighbours(self.device)
        share = self.cpu_share if self.wall_s >= JUDGED_S else None
        timing, reason = verdict(self.device, share, self.threads, neighbours,
                                 max(filter(None, (self.load_start, load_end)), default=None),
                                 self.logical_cpus)
        return {"cpu_s": self.cpu_s, "cpu_share": self.cpu_share,
                "load_start": self.load_start, "load_end": load_end,
                "logical_cpus": self.logical_cpus,
                "gpu_other_processes": None if neighbours is None else neighbours[0],
                "gpu_other_bytes": None if neighbours is None else neighbours[1],
                "timing": timing, "timing_reason": reason}


def verdict(device: torch.device, share: float | None, threads: int,
            neighbours: tuple[int, int] | None, load: float | None,
            logical_cpus: int | None) -> tuple[str, str]:
    """(`clean` or `contended`, why): the rule of the module's docstring."""
    if neighbours is not None and neighbours[0] > 0:
        count, held = neighbours
        return "contended", (f"{count} other process(es) on the GPU, holding "
                             f"{held / 2**20:,.0f} MiB")
    if device.type == "cpu" and share is not None and share < CONTENDED_SHARE:
        machine = "" if load is None else f"; load {load:.1f} on {logical_cpus} CPUs"
        return "contended", (f"got {share:.0%} of the CPU time its {threads} thread(s) asked "
                             f"for{machine}")
    return "clean", ""
