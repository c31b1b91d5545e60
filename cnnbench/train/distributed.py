"""One run over several processes (data parallel): torch.distributed's process group, NCCL on
CUDA and gloo on a CPU, with DistributedDataParallel averaging the gradients. The rendezvous comes
from the launcher's environment: torchrun's (RANK, WORLD_SIZE, …; also what cnnbench's own
launch sets, execute/distributed.py) or Slurm's srun (SLURM_PROCID, SLURM_NTASKS, …).

Every rank draws the same global batch from the same seeded generator and trains on its slice;
each rank's loss is its slice's summed loss × world_size / global batch, so DDP's average of the
ranks' gradients is the gradient of the global batch's mean loss: a run without BatchNorm follows
the trajectory of one process with the whole batch. Decisions that end a run (divergence, a stop
signal, the time limit) are taken on all-reduced values, so every rank takes them at one step.
"""

from __future__ import annotations

import datetime
import os
import random
import subprocess
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from cnnbench.errors import CnnbenchError


@dataclass(frozen=True)
class Launch:
    """Where this process stands among the processes its launcher started."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    launcher: str  # torchrun | srun

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched() -> Launch | None:
    """This process's place when torchrun (or cnnbench's own launch) or srun started several;
    None for a process alone. Under srun, torch's variables are exported from Slurm's."""
    env = os.environ
    if int(env.get("WORLD_SIZE", "1")) > 1 and "RANK" in env:
        world = int(env["WORLD_SIZE"])
        return Launch(int(env["RANK"]), world, int(env.get("LOCAL_RANK", env["RANK"])),
                      int(env.get("LOCAL_WORLD_SIZE", world)), _launcher())
    # a step started by srun (the batch script itself has SLURM_NTASKS but is one process)
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env and env.get(
            "SLURM_STEP_ID", "batch") not in ("batch", "extern"):
        _export_from_slurm()
        return launched()
    return None


def _launcher() -> str:
    """Who started the ranks, as the rows' log lines say it."""
    env = os.environ
    if env.get("TORCHELASTIC_RUN_ID", "").startswith("cnnbench-"):
        return "cnnbench"  # execute/distributed.py's own launch
    if env.get("SLURM_PROCID") == env.get("RANK") and env.get("SLURM_NTASKS") == env.get(
            "WORLD_SIZE"):
        return "srun"
    return "torchrun"


def _export_from_slurm() -> None:
    """torch's env:// variables from Slurm's: submitit's helper inside a submitit job (`cnnbench
    submit`), else the same recipe (the allocation's first node, a port drawn from the job id)."""
    env = os.environ
    if env.get("SUBMITIT_EXECUTOR") == "slurm":
        from submitit.helpers import TorchDistributedEnvironment

        # Slurm already narrowed CUDA_VISIBLE_DEVICES where it gave each task its GPU
        TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return
    tasks, nodes = int(env["SLURM_NTASKS"]), int(env.get("SLURM_JOB_NUM_NODES",
                                                         env.get("SLURM_NNODES", "1")))
    os.environ.update({
        "MASTER_ADDR": env.get("MASTER_ADDR") or _first_node(env["SLURM_JOB_NODELIST"]),
        "MASTER_PORT": env.get("MASTER_PORT") or str(
            random.Random(env["SLURM_JOB_ID"]).randint(20000, 60000)),
        "RANK": env["SLURM_PROCID"], "WORLD_SIZE": str(tasks),
        "LOCAL_RANK": env.get("SLURM_LOCALID", "0"), "LOCAL_WORLD_SIZE": str(tasks // nodes)})


def _first_node(nodelist: str) -> str:
    """The first host of a Slurm node list (`gpu[01-04],cpu1` → gpu01), as scontrol says it."""
    if "[" not in nodelist:
        return nodelist.split(",")[0]
    return subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                          text=True, check=True).stdout.split()[0]


def rank_device(requested: str, launch: Launch) -> torch.device:
    """This rank's device: its own GPU on CUDA (the one it sees, where Slurm gave each task one;
    else the local rank's), the CPU otherwise."""
    if requested in ("cpu", "mps") or not torch.cuda.is_available():
        if requested.startswith("cuda"):
            raise CnnbenchError(f"device {requested!r} asked for, but this machine has no CUDA "
                                "device; use --device cpu (gloo) or --device auto")
        return torch.device("cpu")
    count = torch.cuda.device_count()
    if count == 1:
        return torch.device("cuda", 0)
    if launch.local_rank >= count:
        raise CnnbenchError(f"{launch.local_world_size} processes on this node but only {count} "
                            "CUDA device(s) are visible: start at most one process per GPU")
    return torch.device("cuda", launch.local_rank)


def resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise CnnbenchError("train.distributed.backend nccl needs CUDA devices, and this run "
                            "trains on the CPU: use backend gloo (or auto)")
    return backend


def check_sync_bn(sync_bn: bool, device: torch.device) -> None:
    if sync_bn and device.type != "cuda":
        raise CnnbenchError("train.distributed.sync_bn needs CUDA devices (torch's SyncBatchNorm "
                            "runs on GPUs only): drop sync_bn on a CPU")


class RankGroup:
    """The process group of one process's runs, and the collectives a run's training takes."""

    def __init__(self, launch: Launch, device: torch.device, *, backend: str = "auto",
                 sync_bn: bool = False, timeout_s: float = 300.0) -> None:
        self.launch, self.device = launch, device
        self.rank, self.world_size = launch.rank, launch.world_size
        self.backend = resolve_backend(backend, device)
        check_sync_bn(sync_bn, device)
        self.sync_bn = sync_bn
        if not dist.is_initialized():
            dist.init_process_group(self.backend,
                                    timeout=datetime.timedelta(seconds=timeout_s))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def prepare(self, model: nn.Module) -> nn.Module:
        """The model every rank trains: BatchNorm synchronised across ranks with `sync_bn`."""
        return nn.SyncBatchNorm.convert_sync_batchnorm(model) if self.sync_bn else model

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP over `model`: rank 0's weights broadcast at the start, gradients averaged."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def agree(self, loss_sum: torch.Tensor, *flags: bool) -> tuple[float, list[bool]]:
        """The step's loss summed over ranks, and for each flag whether any rank raised it."""
        values = torch.stack([loss_sum.detach().to(torch.float64),
                              *(torch.tensor(float(f), dtype=torch.float64, device=self.device)
                                for f in flags)])
        dist.all_reduce(values)
        summed = values.tolist()
        return summed[0], [v > 0 for v in summed[1:]]

    def sum(self, *tensors: torch.Tensor) -> list[torch.Tensor]:
        """Each tensor summed over ranks (one collective)."""
        values = torch.stack([t.to(torch.float64) for t in tensors])
        dist.all_reduce(values)
        return [v.to(t.dtype) for v, t in zip(values, tensors)]

    def slowest(self, *seconds: float) -> list[float]:
        """Each time as the slowest rank measured it."""
        values = torch.tensor(seconds, dtype=torch.float64, device=self.device)
        dist.all_reduce(values, op=dist.ReduceOp.MAX)
        return values.tolist()

    def any(self, flag: bool) -> bool:
        return self.agree(torch.zeros((), device=self.device), flag)[1][0]

    def broadcast(self, value):
        """Rank 0's `value` (picklable) on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self.device)
        return box[0]

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()


def is_collective_failure(exc: BaseException) -> bool:
    """Whether `exc` says another rank stopped answering (rather than this rank's own error)."""
    text = str(exc)
    return isinstance(exc, getattr(dist, "DistError", ())) or any(
        word in text for word in ("gloo", "NCCL", "Connection closed", "Connection reset",
                                  "Broken pipe", "timed out", "Timed out"))
