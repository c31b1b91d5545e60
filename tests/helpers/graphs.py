"""CUDA-graph capture without a GPU: `EagerGraphStep` keeps `CudaGraphStep`'s protocol (warm-up,
capture on static inputs, replays that read only those) but its "graph" calls the step again.
A step that read anything but its static inputs and tensors (a Python number that changed
since the capture, say) gives other numbers through it than eagerly."""

from __future__ import annotations

import pytest
from torch import Tensor

from cnnbench.train import ensemble
from cnnbench.train.graphs import CudaGraphStep


class EagerGraphStep(CudaGraphStep):
    """The same protocol without a GPU: the "graph" calls the step again on the static inputs
    and copies its results into the static outputs. A step that read anything but its static
    inputs and tensors (a Python number that changed since the capture, say) would give other
    numbers here than eagerly: the tests run graph-captured training on the CPU through it."""

    captures = 0  # how many steps were captured in this process (the tests read it)

    def _side_stream(self, xs: Tensor, ys: Tensor) -> tuple[Tensor, Tensor]:
        return self.step(xs, ys)

    def _capture(self, xs: Tensor, ys: Tensor) -> None:
        type(self).captures += 1
        self.inputs = (xs.clone(), ys.clone())
        outputs = self.step(*self.inputs)  # stands for the replay that follows the capture
        self.outputs = tuple(t.clone() for t in outputs)  # type: ignore[assignment]
        self.graph = _Replay(self)


class _Replay:
    def __init__(self, owner: EagerGraphStep) -> None:
        self.owner, self.first = owner, True

    def replay(self) -> None:
        if self.first:  # the capture ran the step on the batch it was given already
            self.first = False
            return
        outputs = self.owner.step(*self.owner.inputs)
        for static, value in zip(self.owner.outputs, outputs):
            static.copy_(value)


def install(monkeypatch: pytest.MonkeyPatch) -> type[EagerGraphStep]:
    """Let `graphs: true` runs on the CPU go through `EagerGraphStep`."""
    EagerGraphStep.captures = 0
    monkeypatch.setattr(ensemble, "graph_step", lambda step, device: EagerGraphStep(step, device))
    monkeypatch.setattr(ensemble, "graphs_supported", lambda device: True)
    return EagerGraphStep
