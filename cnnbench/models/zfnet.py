"""ZFNet (Zeiler & Fergus, 2013, "Visualizing and Understanding Convolutional Networks").

The layer table of the paper's Fig. 3, at 3×224×224:

    conv1 96@7×7/2 → 110² → max-pool 3×3/2 → 55² → contrast norm.
    conv2 256@5×5/2 → 26² → max-pool 3×3/2 → 13² → contrast norm.
    conv3 384@3×3, conv4 384@3×3, conv5 256@3×3 → 13² → max-pool 3×3/2 → 6²
    FC 4096 → FC 4096 → C-way softmax; dropout 0.5 on both FC layers.

62,357,608 parameters with 1000 classes. The paper's map sizes fix the rounding: conv1 pads 1,
and the max-pools round up (Caffe's convention). Contrast normalisation is local response
normalisation with AlexNet's constants; weights keep PyTorch's default layer init.

Small inputs: below 47×47 nothing survives the last pool, so smaller images are upsampled to
47×47; adaptive average pooling then gives the 6×6 map the classifier expects at any size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnbench.models.layers import UpsampleToMin, fc_head
from cnnbench.models.registry import register_model

MIN_SIZE = 47  # smallest side that leaves a 1×1 map after the last max-pool


def _contrast_norm() -> nn.Module:
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)


class ZFNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.upsample = UpsampleToMin(MIN_SIZE)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 96, 7, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, ceil_mode=True), _contrast_norm(),
            nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, ceil_mode=True), _contrast_norm(),
            nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.classifier = fc_head(256 * 6 * 6, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.upsample(x))))


@register_model(
    family="zfnet", year=2013, native_input=(3, 224, 224), native_classes=1000,
    small_input=f"upsamples to {MIN_SIZE}², avg-pools to 6²",
    description="AlexNet with 7×7/2 conv1, 5×5/2 conv2",
)
def zfnet(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          dropout: float = 0.5) -> nn.Module:
    return ZFNet(in_channels, num_classes, dropout)
