"""CIFAR ResNets and their plain twins (He, Zhang, Ren & Sun, 2016, §4.2).

A 3×3 conv with 16 filters, then three stages of n basic blocks (two 3×3 convs each) with
16/32/64 filters on 32²/16²/8² maps, global average pooling and one FC layer: 6n + 2 weighted
layers. Shortcuts are identities; where a stage halves the map and doubles the width, the
shortcut subsamples by 2 and zero-pads the new channels (option A), so shortcuts add no
parameters. With 10 classes: resnet20 269,722, resnet32 464,154, resnet44 658,586,
resnet56 853,018, resnet110 1,727,962 (the paper's 0.27M/0.46M/0.66M/0.85M/1.7M).
`plainN` is the same stack without shortcuts, the paper's degradation experiment (Fig. 6).
Init: He normal (fan-out) for convs, batch norm to identity.

Small inputs: fully convolutional up to the global average pool; 28×28 maps go 28²/14²/7².
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnbench.models.layers import kaiming_init
from cnnbench.models.registry import register_model
from cnnbench.models.resnet import conv_bn


class Block(nn.Module):
    """Two 3×3 convs, with (residual) or without (plain) an option-A identity shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.stride = stride
        self.extra_channels = c_out - c_in
        self.body = nn.Sequential(
            conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True), conv_bn(c_out, c_out, 3),
        )

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]
        if self.extra_channels:
            half = self.extra_channels // 2  # pad the new channels on both sides, as is usual
            x = F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return torch.relu(out)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, *, residual: bool = True, in_channels: int = 3,
                 num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"depth must be 6n + 2, got {depth}")
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(conv_bn(in_channels, 16, 3), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        c_in = 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(blocks_per_stage):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(Block(c_in, width, stride, residual=residual))
                c_in = width
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(64, num_classes))
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _info(residual: bool) -> dict:
    return dict(
        family="cifar_resnet", year=2016, native_input=(3, 32, 32), native_classes=10,
        small_input="as is: global avg-pool",
        description="CIFAR: 16/32/64 filters, "
                    + ("option-A shortcuts" if residual else "no shortcuts"),
    )


def _build(depth: int, residual: bool, in_channels: int, num_classes: int) -> nn.Module:
    return CifarResNet(depth, residual=residual, in_channels=in_channels,
                       num_classes=num_classes)


@register_model(**_info(True))
def resnet20(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(20, True, in_channels, num_classes)


@register_model(**_info(True))
def resnet32(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(32, True, in_channels, num_classes)


@register_model(**_info(True))
def resnet44(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(44, True, in_channels, num_classes)


@register_model(**_info(True))
def resnet56(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(56, True, in_channels, num_classes)


@register_model(**_info(True))
def resnet110(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(110, True, in_channels, num_classes)


@register_model(**_info(False))
def plain20(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(20, False, in_channels, num_classes)


@register_model(**_info(False))
def plain32(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(32, False, in_channels, num_classes)


@register_model(**_info(False))
def plain44(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(44, False, in_channels, num_classes)


@register_model(**_info(False))
def plain56(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(56, False, in_channels, num_classes)


@register_model(**_info(False))
def plain110(*, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    return _build(110, False, in_channels, num_classes)
