"""VGG (Simonyan & Zisserman, 2015): configurations A, B, D, E as vgg11/13/16/19, ± batch norm.

3×3 convolutions (padding 1) in five stages closed by 2×2 max-pools, then FC 4096 → 4096 → C
with dropout 0.5: 132,863,336 / 133,047,848 / 138,357,544 / 143,667,240 parameters at 3×224×224
with 1000 classes (vgg16_bn: 138,365,992). The `_bn` variants put batch norm after every conv
(Ioffe & Szegedy 2015), as torchvision's do. Init: He normal for convs (the common practice that
replaced the paper's pre-training of deep configs from config A), N(0, 0.01) for the classifier.

Small inputs: five 2×2 pools need a 32×32 input to leave a 1×1 map, so 28×28 images are
upsampled to 32×32; adaptive average pooling to 7×7 (replicating a 1×1 map) keeps the
published classifier, and its parameter count, at any size.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnbench.models.layers import UpsampleToMin, fc_head, kaiming_init
from cnnbench.models.registry import register_model

MIN_SIZE = 32  # five 2×2 max-pools
POOL = "M"
CONFIGS: dict[str, list[int | str]] = {  # Table 1 of the paper; numbers are conv widths
    "A": [64, POOL, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "B": [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL, 512, 512, POOL],
    "D": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, POOL, 512, 512, 512, POOL,
          512, 512, 512, POOL],
    "E": [64, 64, POOL, 128, 128, POOL, 256, 256, 256, 256, POOL, 512, 512, 512, 512, POOL,
          512, 512, 512, 512, POOL],
}


def make_features(config: list[int | str], in_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for item in config:
        if item == POOL:
            layers.append(nn.MaxPool2d(2, stride=2))
            continue
        layers.append(nn.Conv2d(in_channels, item, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU(inplace=True))
        in_channels = item
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, config: list[int | str], *, in_channels: int = 3, num_classes: int = 1000,
                 batch_norm: bool = False, dropout: float = 0.5) -> None:
        super().__init__()
        self.upsample = UpsampleToMin(MIN_SIZE)
        self.features = make_features(config, in_channels, batch_norm)
        self.pool = nn.AdaptiveAvgPool2d(7)
        self.classifier = fc_head(512 * 7 * 7, num_classes, dropout)
        kaiming_init(self, linear_std=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(self.upsample(x))))


def _vgg(config: str, batch_norm: bool, in_channels: int, num_classes: int,
         dropout: float) -> VGG:
    return VGG(CONFIGS[config], in_channels=in_channels, num_classes=num_classes,
               batch_norm=batch_norm, dropout=dropout)


def _info(layers: int, config: str, batch_norm: bool = False) -> dict:
    return dict(
        family="vgg", year=2015, native_input=(3, 224, 224),
        native_classes=1000,
        small_input=f"upsamples to {MIN_SIZE}², avg-pools to 7²",
        description=f"config {config}: {layers - 3} conv 3×3 + 3 FC"
                    + (", batch norm" if batch_norm else ""),
    )


@register_model(**_info(11, "A"))
def vgg11(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          dropout: float = 0.5) -> nn.Module:
    return _vgg("A", False, in_channels, num_classes, dropout)


@register_model(**_info(13, "B"))
def vgg13(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          dropout: float = 0.5) -> nn.Module:
    return _vgg("B", False, in_channels, num_classes, dropout)


@register_model(**_info(16, "D"))
def vgg16(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          dropout: float = 0.5) -> nn.Module:
    return _vgg("D", False, in_channels, num_classes, dropout)


@register_model(**_info(19, "E"))
def vgg19(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
          dropout: float = 0.5) -> nn.Module:
    return _vgg("E", False, in_channels, num_classes, dropout)


@register_model(**_info(11, "A", batch_norm=True))
def vgg11_bn(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
             dropout: float = 0.5) -> nn.Module:
    return _vgg("A", True, in_channels, num_classes, dropout)


@register_model(**_info(13, "B", batch_norm=True))
def vgg13_bn(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
             dropout: float = 0.5) -> nn.Module:
    return _vgg("B", True, in_channels, num_classes, dropout)


@register_model(**_info(16, "D", batch_norm=True))
def vgg16_bn(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
             dropout: float = 0.5) -> nn.Module:
    return _vgg("D", True, in_channels, num_classes, dropout)


@register_model(**_info(19, "E", batch_norm=True))
def vgg19_bn(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224,
             dropout: float = 0.5) -> nn.Module:
    return _vgg("E", True, in_channels, num_classes, dropout)
