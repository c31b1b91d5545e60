"""LeNet-5 (LeCun, Bottou, Bengio & Haffner, 1998) on 32×32 input.

C1 6@5×5 → S2 avg-pool → C3 16@5×5 (fully connected to S2, the common simplification) → S4 →
C5 120 → F6 84 → 10 outputs, tanh activations: 61,706 parameters. Inputs smaller than 32×32
(MNIST's 28×28) are zero-padded to 32×32 as in the paper, where the 28×28 digits sit centred in
a 32×32 field.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnbench.models.registry import register_model


class LeNet5(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 32) -> None:
        super().__init__()
        self.pad = max(0, 32 - image_size)
        side = max(32, image_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2),   # C1, S2
            nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2),            # C3, S4
        )
        flat = 16 * ((side - 4) // 2 - 4) // 2 * ((side - 4) // 2 - 4) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 120), nn.Tanh(),   # C5 (a 5×5 conv over a 5×5 map is a dense layer)
            nn.Linear(120, 84), nn.Tanh(),     # F6
            nn.Linear(84, num_classes),        # output layer (plain linear, not RBF)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            left = self.pad // 2
            x = F.pad(x, (left, self.pad - left, left, self.pad - left))
        return self.classifier(self.features(x))


@register_model(
    family="lenet", year=1998, native_input=(1, 32, 32), small_input="zero-pads to 32×32",
    description="LeNet-5: 2 conv 5×5 + avg-pool, 120-84-10, tanh",
)
def lenet5(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return LeNet5(in_channels, num_classes, image_size)
