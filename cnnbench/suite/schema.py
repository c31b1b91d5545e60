"""The suite file's schema (pydantic, unknown keys forbidden): what users may write."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from cnnbench.precisions import PRECISIONS, Precision  # noqa: F401  (re-exported)

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


LRGrid = PositiveFloat | Annotated[list[PositiveFloat], Field(min_length=1)] | LogGrid


def grid_values(grid: LRGrid) -> list[float]:
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
        None, description="fp32 (default), or bf16/fp16 autocast (fp16 with a GradScaler)")
    channels_last: bool | None = Field(None, description="NHWC memory layout (default false)")
    compile: bool | None = Field(None, description="torch.compile the model (default false)")


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
    seeds: Annotated[int, Field(ge=1)] | Annotated[list[int], Field(min_length=1)] = 1
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    matrix: Matrix
    include: list[IncludeEntry] = []
    exclude: list[ExcludeEntry] = []
    probes: list[Literal["time", "memory", "flops", "grad_norms"]] = ["time", "memory", "flops"]

    @property
    def dataset_config(self) -> DatasetConfig:
        return self.dataset if isinstance(self.dataset, DatasetConfig) else DatasetConfig(
            name=self.dataset
        )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


