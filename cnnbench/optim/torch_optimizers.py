"""torch.optim's optimizers, registered with the defaults used across the benchmark.

Learning rates here are only fallbacks: a suite's lr grid sets the lr of every run. Every other
default is torch's own unless the entry sets it (`cnnbench list optimizers` shows them all).
"""

from __future__ import annotations

import torch.optim as optim

from cnnbench.optim.registry import OPTIMIZERS, OptimizerDef


@OPTIMIZERS.register
def sgd() -> OptimizerDef:
    return OptimizerDef(optim.SGD, {"lr": 0.01}, "plain (stochastic) gradient descent")


@OPTIMIZERS.register
def momentum() -> OptimizerDef:
    return OptimizerDef(optim.SGD, {"lr": 0.01, "momentum": 0.9},
                        "SGD with heavy-ball momentum β=0.9 (Polyak, 1964)")


@OPTIMIZERS.register
def nesterov() -> OptimizerDef:
    return OptimizerDef(optim.SGD, {"lr": 0.01, "momentum": 0.9, "nesterov": True},
                        "Nesterov accelerated gradient, β=0.9 (Sutskever et al., 2013 form)")


@OPTIMIZERS.register
def rmsprop() -> OptimizerDef:
    return OptimizerDef(optim.RMSprop, {"lr": 1e-3}, "RMSprop (Hinton, 2012), α=0.99 as in torch")


@OPTIMIZERS.register
def adam() -> OptimizerDef:
    return OptimizerDef(optim.Adam, {"lr": 1e-3}, "Adam (Kingma & Ba, 2015)")


@OPTIMIZERS.register
def adamw() -> OptimizerDef:
    return OptimizerDef(optim.AdamW, {"lr": 1e-3},
                        "AdamW (Loshchilov & Hutter, 2019), decoupled weight decay 0.01",
                        weight_decay="decoupled")


@OPTIMIZERS.register
def adagrad() -> OptimizerDef:
    return OptimizerDef(optim.Adagrad, {"lr": 1e-2}, "Adagrad (Duchi et al., 2011)")


@OPTIMIZERS.register
def adadelta() -> OptimizerDef:
    return OptimizerDef(optim.Adadelta, {"lr": 1.0}, "Adadelta (Zeiler, 2012)")


@OPTIMIZERS.register
def nadam() -> OptimizerDef:
    return OptimizerDef(optim.NAdam, {"lr": 2e-3}, "Adam with Nesterov momentum (Dozat, 2016)")


@OPTIMIZERS.register
def radam() -> OptimizerDef:
    return OptimizerDef(optim.RAdam, {"lr": 1e-3},
                        "rectified Adam: variance warm-up (Liu et al., ICLR 2020)")


@OPTIMIZERS.register
def adamax() -> OptimizerDef:
    return OptimizerDef(optim.Adamax, {"lr": 2e-3}, "Adam with the ∞-norm (Kingma & Ba, 2015)")


@OPTIMIZERS.register
def lbfgs() -> OptimizerDef:
    # Without a line search a fixed step of lr diverges easily; strong Wolfe makes it robust.
    # Meant for `batch_size: full`: one step runs up to max_iter iterations on the whole data.
    return OptimizerDef(optim.LBFGS, {"lr": 1.0, "line_search_fn": "strong_wolfe"},
                        "L-BFGS (Liu & Nocedal, 1989) with strong-Wolfe line search; "
                        "for full-batch runs", weight_decay="none")
