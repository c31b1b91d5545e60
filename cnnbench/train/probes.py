"""Measurements taken while a run trains: step times, peak memory, FLOPs, gradient norms.

Each probe is cheap by construction, so that it can stay on by default:
- time: one clock read per step boundary on CPU; on CUDA two events per step, recorded on the
  run's device's current stream and read once per epoch (after the epoch's one
  synchronisation), never a per-step sync.
- memory: CUDA's own peak counters, reset per run after emptying the allocator's cache, minus
  what was allocated when the run started (its data, for one); the kernel's peak-RSS counter
  (VmHWM), reset per run through /proc/self/clear_refs (Linux ≥ 4.0) — exact, no sampling.
- flops: counted once per run by `torch.utils.flop_counter` on a meta-device copy of the
  parameters: no arithmetic, no change to the model, its buffers or the random streams.
- grad_norms (opt-in): one norm per parameter tensor at each evaluation.
"""

from __future__ import annotations

import gc
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

WARMUP_STEPS = 3  # the first steps of a run (allocator, cuDNN autotuning, compile) reported apart

# ─── Time ──────────────────────────────────────────────────────────────────────────────────────


class StepTimer:
    """Per-step data-wait and compute times.

    Call `data_start()` before fetching each batch (and once after the last step),
    `compute_start()` once the batch is in hand, and `epoch_end()` after the epoch's final
    synchronisation. On CUDA the marks are events, turned into milliseconds only in `epoch_end`.
    """

    def __init__(self, device: torch.device, *, clock: Callable[[], float] = time.perf_counter,
                 warmup_steps: int = WARMUP_STEPS) -> None:
        self.cuda = device.type == "cuda"
        # an event records on the *current* device's stream unless told: on `cuda:1` (or a
        # worker's GPU) that would time an idle GPU 0, so the marks go on the run's own stream
        self.stream = torch.cuda.current_stream(device) if self.cuda else None
        self.clock, self.warmup_steps = clock, warmup_steps
        self.data_ms: list[float] = []
        self.step_ms: list[float] = []  # data + compute: the steps' sum is the train time
        self._marks: list[Any] = []

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record(self.stream)
            self._marks.append(event)
        else:
            self._marks.append(self.clock())

    data_start = compute_start = _mark

    def _ms(self, a: Any, b: Any) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3

    def epoch_end(self) -> None:
        """Turn this epoch's marks d0 c0 d1 c1 … dn into step and data times."""
        marks, self._marks = self._marks, []
        for i in range(0, len(marks) - 2, 2):
            d, c, d_next = marks[i], marks[i + 1], marks[i + 2]
            self.data_ms.append(self._ms(d, c))
            self.step_ms.append(self._ms(d, d_next))

    def summary(self) -> dict[str, Any]:
        """Step statistics after warm-up (at most half of the run's steps count as warm-up)."""
        warm = min(self.warmup_steps, len(self.step_ms) // 2)
        steps, data = np.array(self.step_ms[warm:]), np.array(self.data_ms[warm:])
        if not len(steps):
            return {}
        return {
            "step_ms_median": float(np.median(steps)),
            "step_ms_p90": float(np.percentile(steps, 90)),
            "data_ms_median": float(np.median(data)),
            "compute_ms_median": float(np.median(steps - data)),
            "data_s": float(np.sum(self.data_ms)) / 1e3,
            # every step's time, warm-up included: on a whole epoch this is train_s less the
            # epoch's final synchronisation, a check that the marks time the right device
            "steps_s": float(np.sum(self.step_ms)) / 1e3,
            "warmup_steps": warm,
            "warmup_s": float(np.sum(self.step_ms[:warm])) / 1e3,
        }


class NullTimer(StepTimer):
    """The `time` probe switched off: marks nothing."""

    def __init__(self) -> None:
        super().__init__(torch.device("cpu"))

    def _mark(self) -> None:
        pass

    data_start = compute_start = _mark


# ─── Memory ────────────────────────────────────────────────────────────────────────────────────

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def peak_rss_bytes() -> int | None:
    """The process's peak resident set size since the last reset (VmHWM); None off Linux."""
    try:
        match = re.search(r"^VmHWM:\s+(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS ('5' → clear_refs, Linux ≥ 4.0); False where impossible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


class CudaMemory:
    """The CUDA caching allocator's counters for one device (a seam for tests)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def reset(self) -> None:
        """Hand cached blocks back first: the reset sets the peaks to the *current* values, and
        blocks cached by earlier runs would otherwise count as reserved by this one."""
        gc.collect()  # an earlier run's tensors kept alive by reference cycles
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)

    def allocated(self) -> int:
        return torch.cuda.memory_allocated(self.device)

    def reserved(self) -> int:
        return torch.cuda.memory_reserved(self.device)

    def peak_allocated(self) -> int:
        return torch.cuda.max_memory_allocated(self.device)

    def peak_reserved(self) -> int:
        return torch.cuda.max_memory_reserved(self.device)


class MemoryProbe:
    """Peak memory of one run: CUDA allocated/reserved above what was there at `start()` (the
    data on the device, for one: reported as `cuda_baseline_bytes`), and host RSS."""

    def __init__(self, device: torch.device, cuda: CudaMemory | None = None) -> None:
        self.device = device
        self.cuda = cuda or (CudaMemory(device) if device.type == "cuda" else None)
        self.rss_reset = False
        self.baseline = (0, 0)  # (allocated, reserved) bytes when the run started

    def start(self) -> None:
        self.rss_reset = reset_peak_rss()
        if self.cuda is not None:
            self.cuda.reset()
            self.baseline = (self.cuda.allocated(), self.cuda.reserved())

    def summary(self) -> dict[str, Any]:
        cuda = self.cuda
        allocated, reserved = self.baseline
        return {
            "peak_cuda_allocated_bytes": cuda.peak_allocated() - allocated if cuda else None,
            "peak_cuda_reserved_bytes": cuda.peak_reserved() - reserved if cuda else None,
            "cuda_baseline_bytes": allocated if cuda else None,
            # without a reset the counter covers the process's lifetime: not this run's peak
            "peak_rss_bytes": peak_rss_bytes() if self.rss_reset else None,
        }


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def data_bytes(data) -> int:
    """Bytes of a `DeviceData`'s splits: on CUDA, part of the run's baseline, not of its peak."""
    splits = [data.train, data.val, data.test]
    return _nbytes(t for split in splits if split is not None for t in (split.x, split.y))


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes held by parameters, their gradients and the optimizer's state."""
    params = list(model.parameters())
    return {
        "param_bytes": _nbytes(params),
        "grad_bytes": _nbytes(p.grad for p in params),
        "optimizer_state_bytes": _nbytes(v for state in optimizer.state.values()
                                         for v in state.values()),
    }


# ─── an ensemble member's share (train/ensemble.py) ─────────────────────────────────────────────


class SharedTimer(NullTimer):
    """A member's view of the ensemble's step timer: each time divided by the ensemble's size."""

    def __init__(self, timer: StepTimer, size: int) -> None:
        super().__init__()
        self.timer, self.size = timer, size

    def summary(self) -> dict[str, Any]:
        return {k: v if k == "warmup_steps" else v / self.size
                for k, v in self.timer.summary().items()}


class SharedMemory(MemoryProbe):
    """A member's share of the ensemble's peak memory: the peak divided by the ensemble's size."""

    def __init__(self, probe: MemoryProbe, size: int) -> None:
        super().__init__(probe.device)
        self.probe, self.size = probe, size

    def summary(self) -> dict[str, Any]:
        return {k: None if v is None else v // self.size for k, v in self.probe.summary().items()}


# ─── FLOPs ─────────────────────────────────────────────────────────────────────────────────────


# Dense (no structured sparsity) peak FLOP/s, from the vendors' datasheets:
# H100 SXM/PCIe/NVL and H200 SXM/NVL: NVIDIA H100 and H200 Tensor Core GPU datasheets
# (2023/2024);
# A100: NVIDIA A100 datasheet (2021); V100: NVIDIA V100 datasheet (2020);
# L4, L40S, A10: NVIDIA product datasheets; RTX 4090: NVIDIA Ada Lovelace architecture
# whitepaper v1.01, Appendix A (tensor FLOPs with FP32 accumulate, as autocast uses).
# The datasheets print the sparse figure for tensor cores; these are half of it.
TERA = 1e12
PEAK_FLOPS: list[tuple[str, dict[str, float]]] = [  # (regex on the device name, peaks); first match
    (r"H100.*PCIe", {"fp32": 51 * TERA, "tf32": 378 * TERA, "bf16": 756 * TERA,
                     "fp16": 756 * TERA}),
    # the NVL (PCIe dual-card) parts run at lower clocks than SXM: 835 dense bf16 TFLOP/s
    (r"H[12]00 NVL", {"fp32": 60 * TERA, "tf32": 417.5 * TERA, "bf16": 835.5 * TERA,
                      "fp16": 835.5 * TERA}),
    (r"H100", {"fp32": 67 * TERA, "tf32": 494.5 * TERA, "bf16": 989.5 * TERA,
               "fp16": 989.5 * TERA}),
    (r"H200", {"fp32": 67 * TERA, "tf32": 494.5 * TERA, "bf16": 989.5 * TERA,
               "fp16": 989.5 * TERA}),
    (r"A100", {"fp32": 19.5 * TERA, "tf32": 156 * TERA, "bf16": 312 * TERA,
               "fp16": 312 * TERA}),
    (r"V100.*PCIE", {"fp32": 14 * TERA, "fp16": 112 * TERA}),
    (r"V100", {"fp32": 15.7 * TERA, "fp16": 125 * TERA}),
    (r"L40S", {"fp32": 91.6 * TERA, "tf32": 183 * TERA, "bf16": 362 * TERA,
               "fp16": 362 * TERA}),
    (r"\bL4\b", {"fp32": 30.3 * TERA, "tf32": 60 * TERA, "bf16": 121 * TERA,
                 "fp16": 121 * TERA}),
    (r"\bA10\b", {"fp32": 31.2 * TERA, "tf32": 62.5 * TERA, "bf16": 125 * TERA,
                  "fp16": 125 * TERA}),
    (r"RTX 4090", {"fp32": 82.6 * TERA, "tf32": 82.6 * TERA, "bf16": 165.2 * TERA,
                   "fp16": 165.2 * TERA}),
]


def peak_flops_per_s(device_name: str, precision: str) -> float | None:
    """The GPU's dense peak for `precision`; None for CPUs and GPUs not in the table.

    fp32 counts against the TF32 peak where the GPU has one, because cuDNN runs fp32
    convolutions in TF32 by default (`torch.backends.cudnn.allow_tf32`).
    """
    for pattern, peaks in PEAK_FLOPS:
        if re.search(pattern, device_name):
            if precision == "fp32" and torch.backends.cudnn.allow_tf32:
                return peaks.get("tf32", peaks["fp32"])
            return peaks.get(precision)
    return None


def throughput(flops: float | None, seconds: float, peak: float | None
               ) -> dict[str, float | None]:
    """Achieved FLOP/s of `flops` done in `seconds`, and that as a fraction of `peak` (MFU)."""
    if not flops or not seconds:
        return {"achieved_flops_per_s": None, "mfu": None}
    achieved = flops / seconds
    return {"achieved_flops_per_s": achieved, "mfu": achieved / peak if peak else None}


# ─── Gradient norms ────────────────────────────────────────────────────────────────────────────


def grad_norms(model: nn.Module) -> list[dict[str, Any]]:
    """L2 norm of each parameter tensor's current gradient, in the model's parameter order, with
    the tensor's rank (`ndim`: 1 for biases and norm scales, ≥ 2 for weight matrices and
    kernels). One device sync."""
    named = [(name, p) for name, p in model.named_parameters() if p.grad is not None]
    if not named:
        return []
    norms = torch.stack([p.grad.detach().float().norm() for _, p in named]).tolist()
    return [{"layer": name, "ndim": p.dim(), "grad_norm": norm}
            for (name, p), norm in zip(named, norms)]
