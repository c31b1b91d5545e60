"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) in the single-tower layout PyTorch users know.

The paper split its 5 conv layers over two GPUs (96/256/384/384/256 filters); the single-tower
layout (64/192/384/384/256, Krizhevsky's "one weird trick" 2014 variant, torchvision's `alexnet`)
is the one people train today: 61,100,840 parameters at 3×224×224 with 1000 classes.
LRN is left out, as there. Weights keep PyTorch's default layer init, as torchvision does.

Small inputs: the feature stack (stride 4, three 3×3/2 max-pools) needs a 63×63 input to leave a
1×1 map, so smaller images are upsampled to 63×63; adaptive average pooling then gives the 6×6
map the classifier expects at any size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnbench.models.layers import UpsampleToMin
from cnnbench.models.registry import register_model

MIN_SIZE = 63  # smallest side that leaves a 1×1 map after the last max-pool


class AlexNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.upsample = UpsampleToMin(MIN_SIZE)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 11, stride=4, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout), nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.upsample(x))))


@register_model(
    family="alexnet", year=2012, native_input=(3, 224, 224), native_classes=1000,
    small_input=f"upsamples to {MIN_SIZE}², avg-pools to 6²",
    description="5 conv (11×11/4 first) + 3 FC, single tower",
)
def alexnet(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
            dropout: float = 0.5) -> nn.Module:
    return AlexNet(in_channels, num_classes, dropout)
