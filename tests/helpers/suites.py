"""Suites and models the tests share: the tiny suite (synthetic data, seconds to run) and a user
model slow enough that a signal always lands mid-run."""

from __future__ import annotations

from pathlib import Path

TINY_SUITE = {
    "name": "tiny",
    "dataset": {"name": "synthetic", "channels": 1, "image_size": 8, "num_classes": 3,
                "train_size": 96, "test_size": 30, "val_size": 24},
    "train": {"epochs": 2, "batch_size": 16},
    "seeds": 1,
    "device": "cpu",
    "matrix": {"model": [{"name": "mlp", "hidden": 16}], "optimizer": ["sgd", "adam"],
               "lr": [0.01, 0.1]},
}


SLOW_MODEL = """
import time
import torch.nn as nn


class Slow(nn.Module):
    \"\"\"A linear classifier whose training steps take at least `sleep_s`: the tests that stop a
    run mid-way need it to be mid-way for a while, on any machine. Training touches
    `slow_model.py.started`.\"\"\"

    def __init__(self, in_channels=1, num_classes=3, image_size=8, sleep_s=0.005):
        super().__init__()
        self.sleep_s = sleep_s
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        if self.training:
            open(__file__ + ".started", "w").close()
            time.sleep(self.sleep_s)
        return self.fc(x.flatten(1))
"""


def slow_model(folder: Path, sleep_s: float) -> dict:
    """Write the `Slow` model's module into `folder` (put it on sys.path / PYTHONPATH)."""
    (folder / "slow_model.py").write_text(SLOW_MODEL)
    return {"name": "slow_model:Slow", "sleep_s": sleep_s}
