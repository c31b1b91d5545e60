"""torch.optim's optimizers, registered with the defaults used across the benchmark.

Learning rates here are only fallbacks: a suite's lr grid sets the lr of every run.
"""

from __future__ import annotations

import torch.optim as optim

from cnnbench.optim.registry import OPTIMIZERS, OptimizerDef


@OPTIMIZERS.register
def sgd() -> OptimizerDef:
    return OptimizerDef(optim.SGD, {"lr": 0.01}, "plain (stochastic) gradient descent")


@OPTIMIZERS.register
def momentum() -> OptimizerDef:
    return OptimizerDef(optim.SGD, {"lr": 0.01, "momentum": 0.9}, "SGD with heavy-ball momentum β=0.9")


@OPTIMIZERS.register
def nesterov() -> OptimizerDef:
    return OptimizerDef(
        optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True}, "Nesterov accelerated gradient"
    )


@OPTIMIZERS.register
def rmsprop() -> OptimizerDef:
    return OptimizerDef(optim.RMSprop, {"lr": 1e-3}, "RMSprop (Hinton, 2012), α=0.99 as in torch")


@OPTIMIZERS.register
def adam() -> OptimizerDef:
    return OptimizerDef(optim.Adam, {"lr": 1e-3}, "Adam (Kingma & Ba, 2015)")


@OPTIMIZERS.register
def adamw() -> OptimizerDef:
    return OptimizerDef(optim.AdamW, {"lr": 1e-3}, "AdamW, decoupled weight decay 0.01")


@OPTIMIZERS.register
def adagrad() -> OptimizerDef:
    return OptimizerDef(optim.Adagrad, {"lr": 1e-2}, "Adagrad (Duchi et al., 2011)")


@OPTIMIZERS.register
def adadelta() -> OptimizerDef:
    return OptimizerDef(optim.Adadelta, {"lr": 1.0}, "Adadelta (Zeiler, 2012)")
