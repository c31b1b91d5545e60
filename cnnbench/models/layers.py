"""Pieces the ImageNet-shaped families share: upsampling small inputs, and the usual inits."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class UpsampleToMin(nn.Module):
    """Bilinearly upsample an input whose side is below `min_size`; larger inputs pass unchanged.

    The ImageNet nets with large strides (AlexNet, ZFNet, VGG) shrink a 28×28 or 32×32 image to
    nothing before their classifier; upsampling to the smallest side their feature stack accepts
    keeps the published layers (and parameter count) intact at a small extra cost.
    """

    def __init__(self, min_size: int) -> None:
        super().__init__()
        self.min_size = min_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if height >= self.min_size and width >= self.min_size:
            return x
        size = (max(height, self.min_size), max(width, self.min_size))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}"


def kaiming_init(model: nn.Module, *, linear_std: float | None = None) -> None:
    """He et al. 2015 normal init (fan-out, ReLU) for convs, BN to identity, zero biases.

    `linear_std`: draw linear weights from N(0, linear_std²) (VGG's classifier); None keeps
    PyTorch's default linear init.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


def fc_head(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """The classifier of ZFNet and VGG: flatten, two 4096-wide ReLU layers with dropout, output."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )
