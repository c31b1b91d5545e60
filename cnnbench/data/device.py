"""The run's data as tensors on its device: uint8 images, augmented and normalised batch by batch.

Batches are index slices of one tensor and shuffling is a seeded `randperm` on the device: no
DataLoader, no worker processes, no host-to-device copy per step. Augmentation (random crop after
zero padding, horizontal flip) is one gather per batch, drawn from the same seeded generator.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from cnnbench.data.registry import DATASET_INFO, ArrayDataset
from cnnbench.data.split import stratified_take
from cnnbench.errors import CnnbenchError

SPLIT_SEED = 0  # the validation split and subsets are fixed across runs and seeds


@dataclass(frozen=True)
class Augment:
    """Pad by `crop` pixels (zeros) and take a random crop of the original size; flip at random."""

    crop: int = 0
    flip: bool = False

    def __bool__(self) -> bool:
        return bool(self.crop or self.flip)


STANDARD = Augment(crop=4, flip=True)  # the usual CIFAR recipe (He et al. 2016)


def resolve_augment(value, dataset: str) -> Augment:
    """A suite's `augment:` (none | standard | {crop, flip} | unset) as an Augment."""
    if value is None:
        info = DATASET_INFO.get(dataset)
        value = info.augment if info is not None else "none"
    if isinstance(value, str):
        return STANDARD if value == "standard" else Augment()
    return Augment(crop=value.crop, flip=value.flip)


def augment_batch(x: torch.Tensor, augment: Augment, generator: torch.Generator) -> torch.Tensor:
    """Crop and flip each image of a uint8 (B, C, H, W) batch independently, in one gather."""
    b, c, h, w = x.shape
    device, p = x.device, augment.crop
    if p:
        x = torch.nn.functional.pad(x, (p, p, p, p))
    dy = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * p + 1, (b, 1), generator=generator, device=device)
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    if augment.flip:
        flip = torch.rand(b, 1, generator=generator, device=device) < 0.5
        cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(b, device=device).view(b, 1, 1, 1)
    channel = torch.arange(c, device=device).view(1, c, 1, 1)
    return x[batch, channel, rows.view(b, 1, h, 1), cols.view(b, 1, 1, w)]


def rank_dropped(n: int, batch_size: int, world: int) -> int:
    """Samples of each epoch `rank_batches` drops: a last batch too small to give every rank
    one."""
    last = n % batch_size
    return last if 0 < last < world else 0


def _batched(n: int, batch_size: int, drop_last: bool) -> int:
    """How many of n samples an epoch trains on: all, or (drop_last) its whole batches only."""
    return n - n % batch_size if drop_last and n >= batch_size else n


@dataclass
class Split:
    x: torch.Tensor  # uint8 (N, C, H, W) on the device
    y: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.y)


class DeviceData:
    """Train / val / test splits on one device, with the train set's per-channel mean and std."""

    def __init__(self, data: ArrayDataset, device: torch.device, *, val_size: int | None = None,
                 val_fraction: float | None = None, subset: int | None = None,
                 test_subset: int | None = None, augment: Augment = Augment()) -> None:
        self.name, self.classes, self.device = data.name, data.classes, device
        self.augment = augment
        x, y = data.x_train, data.y_train
        if val_size is None:
            val_size = int(round(len(y) * (0.1 if val_fraction is None else val_fraction)))
        if val_size >= len(y):
            raise CnnbenchError(f"dataset {data.name}: val_size {val_size} leaves no training data "
                                f"(it has {len(y)} training images)")
        val_idx, train_idx = stratified_take(y, val_size, SPLIT_SEED)
        if subset is not None and subset < len(train_idx):
            keep, _ = stratified_take(y[train_idx], subset, SPLIT_SEED)
            train_idx = train_idx[keep]
        mean = x[train_idx].reshape(len(train_idx), x.shape[1], -1).mean(axis=(0, 2)) / 255
        std = x[train_idx].reshape(len(train_idx), x.shape[1], -1).std(axis=(0, 2)) / 255
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(np.maximum(std, 1e-6), dtype=torch.float32,
                                device=device).view(1, -1, 1, 1)
        self.train = self._split(x[train_idx], y[train_idx])
        self.val = self._split(x[val_idx], y[val_idx]) if len(val_idx) else None
        x_test, y_test = data.x_test, data.y_test
        if test_subset is not None and test_subset < len(y_test):
            keep, _ = stratified_take(y_test, test_subset, SPLIT_SEED)
            x_test, y_test = x_test[keep], y_test[keep]
        self.test = self._split(x_test, y_test)

    def _split(self, x: np.ndarray, y: np.ndarray) -> Split:
        return Split(torch.from_numpy(np.ascontiguousarray(x)).to(self.device),
                     torch.from_numpy(np.ascontiguousarray(y)).to(self.device))

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float().div_(255) - self.mean) / self.std

    def train_batches(self, batch_size: int, generator: torch.Generator, *,
                      drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of shuffled, augmented batches (the last one may be smaller, or dropped)."""
        for x, y in self._raw_batches(batch_size, generator, drop_last=drop_last):
            yield self.normalize(x), y

    def _raw_batches(self, batch_size: int, generator: torch.Generator, *, drop_last: bool
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """An epoch's shuffled, augmented uint8 batches, not yet normalised."""
        n = len(self.train)
        order = torch.randperm(n, generator=generator, device=generator.device)
        for start in range(0, _batched(n, batch_size, drop_last), batch_size):
            idx = order[start:start + batch_size]
            x = self.train.x[idx]
            if self.augment:
                x = augment_batch(x, self.augment, generator)
            yield x, self.train.y[idx]

    def rank_batches(self, batch_size: int, generator: torch.Generator, rank: int, world: int,
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
        """One epoch of `train_batches` as one rank of `world` trains it: every rank draws the
        same global batch (the same seeded order and augmentation) and keeps its slice (sizes
        differing by at most one); with the global batch's size. A last batch smaller than
        `world` is dropped (some rank would have no sample): `rank_dropped` says how many."""
        for x, y in self._raw_batches(batch_size, generator, drop_last=False):
            if len(y) < world:
                return
            mine = torch.arange(rank, len(y), world, device=y.device)
            yield self.normalize(x[mine]), y[mine], len(y)

    def stacked_train_batches(self, batch_size: int, generators: list[torch.Generator], *,
                              drop_last: bool = False
                              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch of `train_batches` for several runs at once, run k drawing from
        `generators[k]` exactly as it would alone: `[K, B, …]` images and `[K, B]` labels per
        step, gathered in one indexing (augmentation, when on, draws run by run)."""
        n = len(self.train)
        orders = torch.stack([torch.randperm(n, generator=g, device=g.device)
                              for g in generators])
        for start in range(0, _batched(n, batch_size, drop_last), batch_size):
            idx = orders[:, start:start + batch_size]
            x = self.train.x[idx]
            if self.augment:
                x = torch.stack([augment_batch(x[k], self.augment, g)
                                 for k, g in enumerate(generators)])
            yield self.normalize(x), self.train.y[idx]

    def eval_batches(self, split: Split, batch_size: int
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(split), batch_size):
            yield (self.normalize(split.x[start:start + batch_size]),
                   split.y[start:start + batch_size])
