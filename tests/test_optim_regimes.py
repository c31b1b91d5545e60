"""The three gradient-descent regimes through the engine, against hand-written steps:
`batch_size: full` is one step on ∇L = 1/n Σᵢ ∇lossᵢ (also when accumulated in chunks),
`batch_size: 1` is pure SGD, one sample per step; L-BFGS runs full-batch with its closure."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from cnnbench.execute.local import prepare_data
from cnnbench.models import create_model
from cnnbench.suite import expand, load_suite
from cnnbench.train.engine import train
from cnnbench.train.trainer import Trainer

LR = 0.5


@pytest.fixture
def setup(write_suite):
    """One sgd run on the tiny synthetic data, and that data on the CPU."""
    suite = load_suite(write_suite(matrix={"model": [{"name": "mlp", "hidden": 16}],
                                           "optimizer": ["sgd"], "lr": [LR]}))
    spec = expand(suite)[0]
    return spec, prepare_data(suite.dataset_config, torch.device("cpu"))


def with_train(spec, **train):
    return dataclasses.replace(spec, train={**spec.train, **train})


def fresh_model(spec, data):
    torch.manual_seed(spec.seed)  # the engine seeds the same way before building its model
    channels, size, _ = data.shape
    return create_model(spec.model, in_channels=channels, num_classes=data.num_classes,
                        image_size=size, **spec.model_kwargs)


def sample_gradient(model, x, y):
    """∇ of one sample's loss, parameter by parameter."""
    model.zero_grad()
    F.cross_entropy(model(x[None]), y[None]).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("chunk", [1000, 7])  # one chunk; 72 samples in chunks of 7 (last: 2)
def test_full_batch_is_one_step_on_the_mean_gradient(setup, chunk):
    spec, data = setup
    spec = dataclasses.replace(with_train(spec, eval_batch_size=chunk), batch_size="full")
    trainer = Trainer(spec, data)
    trainer.train_epoch()
    assert trainer.steps == 1

    model = fresh_model(spec, data)
    x, y = data.normalize(data.train.x), data.train.y
    n = len(y)
    total = [torch.zeros_like(p) for p in model.parameters()]
    for i in range(n):  # the lecture's ∇L = 1/n Σᵢ ∇lossᵢ, one sample at a time
        for t, g in zip(total, sample_gradient(model, x[i], y[i]), strict=True):
            t += g
    with torch.no_grad():
        expected = [p - LR * t / n for p, t in zip(model.parameters(), total, strict=True)]
    for got, want in zip(trainer.model.parameters(), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_batch_size_one_is_pure_sgd(setup):
    spec, data = setup
    spec = dataclasses.replace(spec, batch_size=1)
    trainer = Trainer(spec, data)
    trainer.train_epoch()
    n = len(data.train)
    assert trainer.steps == n

    model = fresh_model(spec, data)
    generator = torch.Generator().manual_seed(spec.seed)  # the engine's shuffling
    for x, y in data.train_batches(1, generator):  # one sample per step: θ ← θ − lr ∇lossᵢ
        grads = sample_gradient(model, x[0], y[0])
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads, strict=True):
                p -= LR * g
    for got, want in zip(trainer.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_lbfgs_full_batch_runs_with_its_closure(setup):
    spec, data = setup
    hparams = {"lr": 1.0, "line_search_fn": "strong_wolfe", "max_iter": 5}
    spec = dataclasses.replace(with_train(spec, epochs=2, eval_batch_size=40),
                               optimizer="lbfgs", optimizer_name="lbfgs", batch_size="full",
                               hparams=hparams, lr=1.0)
    result = train(spec, data)
    assert result.summary["status"] == "ok" and result.summary["steps"] == 2
    with torch.no_grad():
        start = F.cross_entropy(fresh_model(spec, data)(data.normalize(data.train.x)),
                                data.train.y).item()
    # each L-BFGS step runs up to max_iter closure evaluations on the whole training set
    assert result.history[-1]["train_loss"] < start / 2
