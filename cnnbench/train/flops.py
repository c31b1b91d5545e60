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
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from cnnbench.models import count_parameters, create_model


def count_flops(model: nn.Module, input_shape: tuple[int, ...], *, backward: bool = True,
                meta: bool = True) -> tuple[int, int | None]:
    """Forward and training (forward + backward) FLOPs per sample of `input_shape` (C, H, W);
    the training figure is None with `backward=False`.

    With `meta` (the default) the model runs on meta tensors standing in for its parameters
    and buffers: nothing is computed and the model itself is not touched. `meta=False` runs it
    for real on zeros, for models whose code reads tensor values.
    """
    batch = 2  # BatchNorm in train mode needs more than one value per channel
    state = {name: torch.empty_like(t, device="meta").requires_grad_(t.requires_grad)
             if meta else t for name, t in [*model.named_parameters(), *model.named_buffers()]}
    device = "meta" if meta else next(iter(state.values()), torch.empty(0)).device
    dtype = next((t.dtype for t in state.values() if t.is_floating_point()), torch.float32)
    x = torch.zeros((batch, *input_shape), device=device, dtype=dtype)  # fp64 models take fp64
    with FlopCounterMode(display=False) as forward:
        functional_call(model, state, (x,))
    if not backward:
        return forward.get_total_flops() // batch, None
    with FlopCounterMode(display=False) as training:
        out = functional_call(model, state, (x,))
        if out.requires_grad:
            out.float().sum().backward()
    return forward.get_total_flops() // batch, training.get_total_flops() // batch


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

    def cost(meta: bool) -> ModelCost:
        with torch.device("meta" if meta else "cpu"):
            model = create_model(name, in_channels=channels, num_classes=num_classes,
                                 image_size=size, **kwargs)
        flops, _ = count_flops(model, input_shape, backward=False, meta=meta)
        return ModelCost(count_parameters(model), flops)

    try:
        return cost(meta=True)
    except Exception:  # code that reads tensor data fails on meta; its real errors show on CPU
        return cost(meta=False)
