"""Forward FLOPs per sample, counted by `torch.utils.flop_counter.FlopCounterMode`.

Convention: one multiply-add is 2 FLOPs (FlopCounterMode's), so papers that quote
"multiply-adds" (He et al.'s 3.6 G for ResNet-34) give half the figure here. Only the ops
FlopCounterMode has formulas for are counted — convolutions and matrix products, which dominate
every CNN here; batch norm, activations, pooling and resizing count as 0.

Counting can run on the `meta` device: shapes only, no memory and no arithmetic, so the FLOPs of
VGG-19 at 224² cost milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from cnnbench.models import count_parameters, create_model


def forward_flops(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """FLOPs of one forward pass of one (C, H, W) sample, in eval mode, on the model's device."""
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        model.train(was_training)
    return counter.get_total_flops()


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    flops: int  # forward FLOPs per sample, a multiply-add counted as 2


def model_cost(name: str, input_shape: tuple[int, int, int], num_classes: int,
               **kwargs) -> ModelCost:
    """Parameters and forward FLOPs of a model built for `input_shape` and `num_classes`.

    Built on the meta device when it can be (shapes only: no memory, no arithmetic); a model
    whose code needs real tensors is built on the CPU instead.
    """
    channels, size, _ = input_shape

    def cost() -> ModelCost:
        model = create_model(name, in_channels=channels, num_classes=num_classes,
                             image_size=size, **kwargs)
        return ModelCost(count_parameters(model), forward_flops(model, input_shape))

    try:
        with torch.device("meta"):
            return cost()
    except Exception:  # code that reads tensor data fails on meta; its real errors show on CPU
        return cost()
