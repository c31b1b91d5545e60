"""Ranks of a data-parallel run started by the tests themselves (torch.multiprocessing, the
environment torchrun would set), and a model that dies on one rank."""

from __future__ import annotations

import os
import signal
import socket

import torch
import torch.nn as nn

from cnnbench.execute.local import prepare_data
from cnnbench.suite import RunSpec, Suite
from cnnbench.train.distributed import RankGroup, launched
from cnnbench.train.trainer import Trainer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun exports to each rank it starts on one machine."""
    return {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
            "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port)}


def train_first_epoch(suite: Suite, spec: RunSpec) -> dict[str, torch.Tensor]:
    """The model's weights after one epoch of `spec`, trained in this process alone."""
    trainer = Trainer(spec, prepare_data(suite.dataset_config, torch.device("cpu")))
    trainer.train_epoch()
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def rank_first_epoch(rank: int, world: int, port: int, suite: Suite, spec: RunSpec,
                     out: str) -> None:
    """One rank of `world`: one epoch of `spec` data-parallel; rank 0 saves the weights."""
    os.environ.update(torchrun_env(rank, world, port))
    torch.set_num_threads(1)
    group = RankGroup(launched(), torch.device("cpu"), backend="gloo", timeout_s=60)
    try:
        trainer = Trainer(spec, prepare_data(suite.dataset_config, torch.device("cpu")),
                          group=group)
        trainer.train_epoch()
        if rank == 0:
            torch.save(trainer.model.state_dict(), out)
    finally:
        group.close()


class DiesOnRankOne(nn.Module):
    """A linear classifier whose rank 1 fails at its third training step: `how` = raise (a
    Python error, with a traceback) or kill (SIGKILL, no word)."""

    def __init__(self, in_channels=1, num_classes=3, image_size=8, how="raise"):
        super().__init__()
        self.how, self.steps = how, 0
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        if self.training and os.environ.get("RANK") == "1":
            self.steps += 1
            if self.steps == 3 and self.how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.steps == 3:
                raise RuntimeError("rank one's data is cursed")
        return self.fc(x.flatten(1))
