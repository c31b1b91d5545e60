"""The suite file's schema (pydantic, unknown keys forbidden): what users may write."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PositiveFloat,
    Tag,
    model_validator,
)

from cnnbench.choices import EXECUTIONS, PRECISIONS, Execution, Precision  # noqa: F401  (re-exported)

# ─── Schema ────────────────────────────────────────────────────────────────────────────────────


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Open(BaseModel):
    """An entry whose extra keys are options of what it names (model kwargs, hyper-parameters)."""

    model_config = ConfigDict(extra="allow")

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class LogGrid(Strict):
    """`{log: [a, b], num: n}`: n geometrically spaced values from a to b, both ends included."""

    log: tuple[PositiveFloat, PositiveFloat]
    num: int = Field(ge=1)

    def values(self) -> list[float]:
        lo, hi = self.log
        if self.num == 1:
            return [lo]
        step = (math.log(hi) - math.log(lo)) / (self.num - 1)
        # rounded to 12 significant digits so that 1e-3 stays 0.001, not 0.0010000000000000002
        return [float(f"{math.exp(math.log(lo) + i * step):.12g}") for i in range(self.num)]


class SearchSpec(Strict):
    """An lr search (suite/search.py): a start grid (`log` + `num`, or `values`, or `start:
    auto`: the grid the group's lr range test suggests, suite/starts.py), then rounds that
    expand, refine and confirm."""

    log: tuple[PositiveFloat, PositiveFloat] | None = None
    num: int = Field(3, ge=2, description="start grid points with `log` (at least 2)")
    values: Annotated[list[PositiveFloat], Field(min_length=2)] | None = None
    start: Literal["auto"] | None = Field(
        None, description="auto: round 1 is the start grid that the group's lr range test "
        "(Smith 2017, as `cnnbench lr-find`) suggests; run once, recorded in the results "
        "folder (lr_find/), instead of log or values")
    expand: int = Field(4, ge=0, description="points added beyond each end, at most")
    refine: int = Field(2, ge=0, le=6, description="rounds halving the spacing around the best")
    confirm: int = Field(3, ge=1, description="seeds in all at the best lr (and those near it)")
    tolerance: float = Field(0.01, ge=0, description="lrs within this of the best get confirmed")
    metric: Literal["val_acc", "val_loss", "train_acc", "train_loss"] = "val_acc"
    max_runs: int | None = Field(None, ge=1, description="runs per group, all rounds together")

    @model_validator(mode="after")
    def _one_start(self) -> SearchSpec:
        given = [k for k in ("log", "values", "start") if getattr(self, k) is not None]
        if not given:
            raise ValueError("give the start grid as one of: log (with num), values, start: auto")
        if len(given) > 1:
            raise ValueError(f"give one start grid, not both {given[0]} and {given[1]}: "
                             "log (with num), values, or start: auto")
        if self.start is not None and "num" in self.model_fields_set:
            raise ValueError("num goes with log; start: auto takes the range test's grid")
        if self.log is not None and not self.log[0] < self.log[1]:
            raise ValueError("log: [low, high] needs low < high (a start grid of 2+ points)")
        if self.values is not None and len(set(self.values)) < 2:
            raise ValueError("values: a start grid needs at least 2 different lrs")
        return self

    def start_values(self) -> list[float]:
        """The start grid, sorted (none for `start: auto`: its range test decides it)."""
        if self.log is not None:
            return LogGrid(log=self.log, num=self.num).values()
        return sorted({float(v) for v in self.values or []})


class LRSearch(Strict):
    """`{search: {...}}`: find the best lr instead of running a fixed grid."""

    search: SearchSpec


def _lr_kind(value: Any) -> str:
    """Which form an lr entry takes, so that errors speak of that form only."""
    if isinstance(value, dict):
        return "LRSearch" if "search" in value else "LogGrid"
    if isinstance(value, (LogGrid, LRSearch)):
        return type(value).__name__
    return "list[float]" if isinstance(value, list) else "float"


LRGrid = Annotated[
    Annotated[PositiveFloat, Tag("float")]
    | Annotated[Annotated[list[PositiveFloat], Field(min_length=1)], Tag("list[float]")]
    | Annotated[LogGrid, Tag("LogGrid")] | Annotated[LRSearch, Tag("LRSearch")],
    Discriminator(_lr_kind)]


def grid_values(grid: LRGrid) -> list[float]:
    if isinstance(grid, LRSearch):
        return grid.search.start_values()
    if isinstance(grid, LogGrid):
        return grid.values()
    return [float(v) for v in grid] if isinstance(grid, list) else [float(grid)]


class AugmentConfig(Strict):
    """Random crop after zero padding by `crop` pixels, and random horizontal flip."""

    crop: int = Field(0, ge=0)
    flip: bool = False


class DatasetConfig(Strict):
    name: str
    root: str | None = None  # data folder; else --data-dir, CNNBENCH_DATA, the user cache
    val_size: int | None = Field(None, ge=0)
    val_fraction: float | None = Field(None, ge=0, lt=1)
    subset: int | None = Field(None, ge=1, description="train on a stratified subset of N images")
    test_subset: int | None = Field(
        None, ge=1, description="evaluate on a stratified subset of N test images")
    # none | standard (crop 4 + flip) | {crop: 4, flip: true}; unset: the dataset's default
    augment: Literal["none", "standard"] | AugmentConfig | None = None
    image_size: int | None = Field(None, ge=1)
    test_fraction: float | None = Field(None, gt=0, lt=1, description="imagefolder without test/")
    download: bool = True
    # synthetic data only
    channels: int | None = Field(None, ge=1)
    num_classes: int | None = Field(None, ge=2)
    train_size: int | None = Field(None, ge=1)
    test_size: int | None = Field(None, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _one_val_key(self) -> DatasetConfig:
        if self.val_size is not None and self.val_fraction is not None:
            raise ValueError("give val_size or val_fraction, not both")
        return self


class ScheduleConfig(Open):
    name: str = "constant"


class Target(Strict):
    metric: Literal["val_acc", "val_loss", "train_loss", "train_acc", "test_acc"] = "val_acc"
    value: float


BatchSize = Annotated[int, Field(ge=1)] | Literal["full"]


class DistributedConfig(Strict):
    """`train: {distributed: {...}}`: each run trains data-parallel (DDP) over `world_size`
    processes, each taking its slice of every global batch (train/distributed.py)."""

    world_size: int | None = Field(
        None, ge=1, description="processes per run (default: what torchrun or srun started; "
        "cnnbench starts them itself where no launcher did)")
    backend: Literal["auto", "nccl", "gloo"] = Field(
        "auto", description="auto: NCCL on CUDA, gloo on a CPU")
    sync_bn: bool = Field(
        False, description="BatchNorm statistics over the global batch (SyncBatchNorm, CUDA "
        "only); default: each process normalises by its own slice, as DDP does")
    timeout_s: float = Field(
        300.0, gt=0, description="a collective that waits longer (a rank died or hangs) ends "
        "the run as error")


class TrainConfig(Strict):
    epochs: int = Field(1, ge=1)
    batch_size: BatchSize = 128
    schedule: str | ScheduleConfig = "constant"
    target: Target | None = None
    eval_batch_size: int = Field(1000, ge=1)
    divergence_factor: float = Field(10.0, gt=1, description="loss above factor × start: diverged")
    time_limit_s: float | None = Field(None, gt=0, description="stop a run as `timeout` after")
    # unset (None) means fp32 / off, and keeps the run_ids of suites that do not use them
    precision: Precision | None = Field(
        None, description="fp32 (default), bf16/fp16 autocast (fp16 with a GradScaler), or fp64 "
        "(float64 weights and inputs: reference runs)")
    channels_last: bool | None = Field(
        None, description="NHWC memory layout (default: on for conv nets trained alone on CUDA, "
        "off elsewhere)")
    compile: bool | None = Field(None, description="torch.compile the model (default false)")
    graphs: bool | None = Field(
        None, description="capture each training step (forward, backward, optimizer) as one "
        "CUDA graph; the last, smaller batch of an epoch is dropped (default false)")
    tf32: bool | None = Field(
        None, description="TF32 tensor cores for fp32 matmuls and convolutions on CUDA "
        "(default true)")
    distributed: DistributedConfig | None = Field(
        None, description="data-parallel runs over several processes (GPUs or nodes)")


class ModelEntry(Open):
    name: str


class OptimizerEntry(Open):
    name: str
    label: str | None = None
    lr: LRGrid | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


class Matrix(Strict):
    model: Annotated[list[str | ModelEntry], Field(min_length=1)]
    optimizer: Annotated[list[str | OptimizerEntry], Field(min_length=1)]
    lr: LRGrid | None = None
    batch_size: Annotated[list[BatchSize], Field(min_length=1)] | None = None


class ExcludeEntry(Strict):
    """Leaves out the matrix's combinations that match every key given."""

    model: str | None = None  # a model name
    optimizer: str | None = None  # an optimizer label (or name, where it has no label)
    lr: PositiveFloat | None = None
    batch_size: BatchSize | None = None

    @model_validator(mode="after")
    def _some_key(self) -> ExcludeEntry:
        if not self.model_fields_set:
            raise ValueError("an exclude entry needs at least one of: "
                             + ", ".join(ExcludeEntry.model_fields))
        return self


class IncludeEntry(Strict):
    """Adds one combination (at every lr of its grid) beside the matrix's."""

    model: str | ModelEntry
    optimizer: str  # a label of the matrix's optimizers, or an optimizer name
    lr: LRGrid | None = None  # default: the optimizer's grid, else the matrix's
    batch_size: BatchSize | None = None  # default: train.batch_size


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    dataset: str | DatasetConfig
    train: TrainConfig = TrainConfig()
    # a seed is stored as an int64 column (and torch takes no more)
    seeds: Annotated[int, Field(ge=1)] | Annotated[
        list[Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]], Field(min_length=1)] = 1
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    # sequential: one run after another; ensemble: runs that differ only in lr, seed or optimizer
    # hyper-parameter values train as one vectorized ensemble; auto: the ensemble on CUDA only
    execution: Execution = "sequential"
    matrix: Matrix
    include: list[IncludeEntry] = []
    exclude: list[ExcludeEntry] = []
    probes: list[Literal["time", "memory", "flops", "grad_norms"]] = ["time", "memory", "flops"]
    max_runs: int | None = Field(None, ge=1, description="lr searches: runs of the whole suite")

    @property
    def dataset_config(self) -> DatasetConfig:
        return self.dataset if isinstance(self.dataset, DatasetConfig) else DatasetConfig(
            name=self.dataset
        )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


