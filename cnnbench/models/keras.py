"""The two Keras MNIST examples: the dense net of the Keras guide and `mnist_convnet`.

mlp:       Flatten → Dense 128 ReLU → Dense 10           101,770 parameters on 28×28×1
keras_cnn: Conv 32 3×3 → pool → Conv 64 3×3 → pool → Flatten → Dropout 0.5 → Dense 10
                                                         34,826 parameters on 28×28×1
"""

from __future__ import annotations

import torch.nn as nn

from cnnbench.models.registry import register_model


@register_model(
    family="mlp", year=2015, native_input=(1, 28, 28),
    description="Keras dense net: Flatten → Dense 128 ReLU → Dense",
)
def mlp(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
        hidden: int = 128) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * image_size * image_size, hidden),
        nn.ReLU(),
        nn.Linear(hidden, num_classes),
    )


@register_model(
    family="keras", year=2015, native_input=(1, 28, 28),
    description="Keras mnist_convnet: 2 conv 3×3 + max-pool, dropout 0.5, dense",
)
def keras_cnn(*, in_channels: int = 1, num_classes: int = 10, image_size: int = 28,
              dropout: float = 0.5) -> nn.Module:
    side = ((image_size - 2) // 2 - 2) // 2  # two valid 3×3 convs, each followed by a 2×2 pool
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(64 * side * side, num_classes),
    )
