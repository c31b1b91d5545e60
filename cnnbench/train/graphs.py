"""Training steps captured as one CUDA graph (`train: {graphs: true}`) and replayed.

A small network's step on a GPU is launch-bound: hundreds of kernels of microseconds each, every
one launched by Python. Captured once, the whole step — forward, backward and the fused
optimizer update of every member (train/stacking.py) — replays as one launch. What a replay
reads must sit at fixed addresses: the batch is copied into static buffers, the members'
hyper-parameters (a schedule's lr) are written into their static tensors before each replay,
and the step's outputs are the same tensors every time (read them before the next replay).

As torch's documentation asks, the first `WARMUP_STEPS` steps run eagerly on a side stream (they
are real steps of the run), then the step is captured; a change of shape (the last, smaller
batch: `graphs: true` drops it, said in the row) or of the members stepping (one froze) takes
the eager step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

WARMUP_STEPS = 3  # eager steps before the capture: lazy initialisation, cuDNN autotuning

Step = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


class CudaGraphStep:
    """`step(xs, ys)` captured on first use after the warm-up and replayed afterwards."""

    def __init__(self, step: Step, device: torch.device) -> None:
        self.step, self.device = step, device
        self.eager_steps = 0
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: tuple[Tensor, Tensor] | None = None
        self.outputs: tuple[Tensor, Tensor] | None = None

    def __call__(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        if self.graph is None and self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            return self._side_stream(xs, ys)
        if self.graph is None:
            self._capture(xs, ys)
        assert self.inputs is not None and self.outputs is not None
        self.inputs[0].copy_(xs)
        self.inputs[1].copy_(ys)
        self.graph.replay()
        return self.outputs

    def _side_stream(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            outputs = self.step(xs, ys)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        return outputs

    def _capture(self, xs: Tensor, ys: Tensor) -> None:
        """Record the step on static copies of a batch's shape (capturing runs nothing)."""
        self.inputs = (xs.clone(), ys.clone())
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self.step(*self.inputs)


def graphs_supported(device: torch.device) -> bool:
    """CUDA graphs are CUDA's: elsewhere `graphs: true` trains eagerly (the row says so)."""
    return device.type == "cuda"


def graph_step(step: Step, device: torch.device) -> CudaGraphStep:
    """The captured form of `step` on `device` (CUDA only: `graphs` is off elsewhere)."""
    return CudaGraphStep(step, device)
