"""What `train: {distributed: ...}` cannot do, said at validation: every process takes an equal
slice of each global batch, and one run spans all of them (so it cannot also be an ensemble
member or a captured graph)."""

from __future__ import annotations

from cnnbench.suite.schema import Suite

_HOW = "drop train.distributed, or"


def batch_sizes(suite: Suite) -> list[tuple[tuple, int | str]]:
    """(location, batch size) of every batch size the suite's runs train with."""
    sizes: list[tuple[tuple, int | str]] = [(("train", "batch_size"), suite.train.batch_size)]
    sizes += [(("matrix", "batch_size", i), b) for i, b in enumerate(suite.matrix.batch_size or [])]
    sizes += [(("include", i, "batch_size"), e.batch_size) for i, e in enumerate(suite.include)
              if e.batch_size is not None]
    return sizes


def distributed_errors(suite: Suite) -> list[tuple[tuple, str]]:
    """(location, message) of each setting a data-parallel run cannot take; none without it."""
    config = suite.train.distributed
    if config is None:
        return []
    errors: list[tuple[tuple, str]] = []
    if suite.execution == "ensemble":
        errors.append((("execution",), "execution: ensemble stacks many runs on one device, "
                       "train.distributed spreads one run over several: drop one of them "
                       "(execution: sequential, or no train.distributed)"))
    if suite.train.graphs:
        errors.append((("train", "graphs"), f"graphs: true captures one process's step: {_HOW} "
                       "drop graphs: true"))
    on_cpu = suite.device in ("cpu", "mps")
    if config.backend == "nccl" and on_cpu:
        errors.append((("train", "distributed", "backend"),
                       f"backend nccl needs CUDA devices and the suite trains on {suite.device}: "
                       "use backend gloo (or auto), or device cuda"))
    if config.sync_bn and on_cpu:
        errors.append((("train", "distributed", "sync_bn"),
                       "sync_bn: true needs CUDA devices (torch's SyncBatchNorm runs on GPUs "
                       f"only) and the suite trains on {suite.device}: drop sync_bn or use "
                       "device cuda"))
    for loc, size in batch_sizes(suite):
        problem = batch_problem(size, config.world_size)
        if problem:
            errors.append((loc, problem))
    return errors


def batch_problem(size: int | str, world_size: int | None) -> str | None:
    """Why a global batch of `size` cannot be split over `world_size` processes, or None."""
    if size == "full":
        return ("train.distributed splits mini-batches; a full-batch step accumulates chunks of "
                f"the whole data: {_HOW} use a batch size")
    if world_size and int(size) % world_size:
        return (f"batch size {size} is the global batch and does not split evenly over "
                f"world_size {world_size}: use a multiple of {world_size} (e.g. "
                f"{(int(size) // world_size + 1) * world_size})")
    return None
