"""A user-defined model for cnnbench: any callable returning an `nn.Module` will do.

A suite names it as `module.path:callable` (here `examples.tiny_net:TinyNet`, run from the
repository root). cnnbench passes `in_channels`, `num_classes` and `image_size` from the dataset
when the callable accepts them, plus any other keys of the suite entry (here `width`).
"""

from __future__ import annotations

import torch
import torch.nn as nn


class TinyNet(nn.Module):
    """Two 3×3 conv blocks of `width` and `2 * width` filters, each closed by a 2×2 max-pool,
    then a linear layer sized from `image_size`."""

    def __init__(self, *, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
                 width: int = 16) -> None:
        super().__init__()
        side = image_size // 4  # two 2×2 pools
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * width * side * side, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
