"""A stand-in for `torch.cuda` on a machine without a GPU: it says N devices are there and, like
torch, rejects an index-less device in `set_device` (through torch's own `_get_device_index`),
so the tests see what a real GPU machine would do with each device spelling."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch
from torch.cuda._utils import _get_device_index


@dataclass
class FakeCuda:
    """What the code under test asked of CUDA: the indices it made current, in order."""

    count: int = 1
    current: int = 0
    made_current: list[int] = field(default_factory=list)

    def set_device(self, device: torch.device | str | int) -> None:
        index = _get_device_index(device)  # ValueError for torch.device("cuda"), as in torch
        if not 0 <= index < self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        self.current = index
        self.made_current.append(index)


def install(monkeypatch: pytest.MonkeyPatch, count: int = 1) -> FakeCuda:
    """Make `torch.cuda` report `count` GPUs for the rest of the test."""
    fake = FakeCuda(count)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: fake.count)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: fake.current)
    monkeypatch.setattr(torch.cuda, "set_device", fake.set_device)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    return fake
