"""Paired seeds, a guarantee the paired comparisons rely on: for a given model and seed, every
optimizer and lr starts from the same initial weights and sees the same batches in the same
order (augmentation included), epoch after epoch; another seed changes both."""

from __future__ import annotations

import torch

from cnnbench.execute.local import prepare_data
from cnnbench.suite import expand, validate_suite
from cnnbench.train.trainer import Trainer
from tests.helpers.suites import TINY_SUITE

SUITE = {**TINY_SUITE, "seeds": [0, 1],
         "dataset": {**TINY_SUITE["dataset"], "augment": {"crop": 1, "flip": True}},
         "matrix": {**TINY_SUITE["matrix"],
                    "optimizer": ["sgd", {"name": "sgd", "label": "momentum", "momentum": 0.9},
                                  "adam"]}}


def _trace(spec, data) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
    """The initial weights of a run, and every (augmented) batch its two epochs trained on."""
    trainer = Trainer(spec, data)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    batches: list[torch.Tensor] = []
    step = trainer.step

    def recording(x, y):
        batches.extend([x.clone(), y.clone()])
        return step(x, y)

    trainer.step = recording
    for _ in range(SUITE["train"]["epochs"]):
        trainer.train_epoch()
    return weights, batches


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_same_seed_same_weights_and_data_order_across_optimizers_and_lrs():
    suite = validate_suite(SUITE)
    data = prepare_data(suite.dataset_config, torch.device("cpu"))
    specs = expand(suite)
    assert len({(s.optimizer, s.lr) for s in specs}) == 6
    traces = {(s.optimizer, s.lr, s.seed): _trace(s, data) for s in specs}
    for seed in (0, 1):
        runs = [v for (_, _, s), v in traces.items() if s == seed]
        weights, batches = runs[0]
        for other_weights, other_batches in runs[1:]:
            assert _same(list(weights.values()), list(other_weights.values()))
            assert _same(batches, other_batches)
    (w0, b0), (w1, b1) = traces[("sgd", 0.01, 0)], traces[("sgd", 0.01, 1)]
    assert not _same(list(w0.values()), list(w1.values()))
    assert not _same(b0, b1)
