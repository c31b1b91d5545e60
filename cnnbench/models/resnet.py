"""ImageNet ResNets (He, Zhang, Ren & Sun, 2016, "Deep Residual Learning"), Table 1.

7×7/2 conv stem + 3×3/2 max-pool, four stages of basic (18, 34) or bottleneck (50, 101, 152)
blocks with 64/128/256/512 base widths, global average pooling, one FC layer. Shortcuts are
identities, with 1×1 projections where the shape changes (the paper's option B): 11,689,512 /
21,797,672 / 25,557,032 / 44,549,160 / 60,192,808 parameters at 3×224×224 with 1000 classes.
As in the paper, a bottleneck block downsamples in its first 1×1 conv (torchvision's "v1.5"
moves the stride to the 3×3 conv: same parameters, ~8% more FLOPs than the paper's 3.8 G
multiply-adds for resnet50). Init: He normal (fan-out) for convs, batch norm to identity.

Small inputs: the network is fully convolutional up to its global average pool, so 32×32 and
28×28 inputs run through the unchanged ImageNet stem and end on a 1×1 map.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnbench.models.layers import kaiming_init
from cnnbench.models.registry import register_model


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


class BasicBlock(nn.Module):
    """Two 3×3 convs; used by resnet18 and resnet34."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(c_in, width, 3, stride), nn.ReLU(inplace=True), conv_bn(width, width, 3),
        )
        self.shortcut = (conv_bn(c_in, width, 1, stride) if stride != 1 or c_in != width
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce (carries the stride, as in the paper) → 3×3 → 1×1 expand ×4."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            conv_bn(c_in, width, 1, stride), nn.ReLU(inplace=True),
            conv_bn(width, width, 3), nn.ReLU(inplace=True),
            conv_bn(width, c_out, 1),
        )
        self.shortcut = (conv_bn(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out
                         else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], depths: list[int], *,
                 in_channels: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            conv_bn(in_channels, 64, 7, stride=2), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        c_in = 64
        for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            for j in range(depth):
                stages.append(block(c_in, width, 2 if i > 0 and j == 0 else 1))
                c_in = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c_in, num_classes))
        kaiming_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


def _info(depth: int, block: str) -> dict:
    return dict(
        family="resnet", year=2016, native_input=(3, 224, 224), native_classes=1000,
        small_input="as is: global avg-pool (1² map at 32²)",
        description=f"ImageNet, {block} blocks, 1×1 projections",
    )


@register_model(**_info(18, "basic"))
def resnet18(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224) -> nn.Module:
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels=in_channels, num_classes=num_classes)


@register_model(**_info(34, "basic"))
def resnet34(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224) -> nn.Module:
    return ResNet(BasicBlock, [3, 4, 6, 3], in_channels=in_channels, num_classes=num_classes)


@register_model(**_info(50, "bottleneck"))
def resnet50(*, in_channels: int = 3, num_classes: int = 1000, image_size: int = 224) -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels=in_channels, num_classes=num_classes)


@register_model(**_info(101, "bottleneck"))
def resnet101(*, in_channels: int = 3, num_classes: int = 1000,
              image_size: int = 224) -> nn.Module:
    return ResNet(Bottleneck, [3, 4, 23, 3], in_channels=in_channels, num_classes=num_classes)


@register_model(**_info(152, "bottleneck"))
def resnet152(*, in_channels: int = 3, num_classes: int = 1000,
              image_size: int = 224) -> nn.Module:
    return ResNet(Bottleneck, [3, 8, 36, 3], in_channels=in_channels, num_classes=num_classes)
