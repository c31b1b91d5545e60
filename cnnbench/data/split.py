"""Seeded, stratified selection of indices: validation splits and training subsets."""

from __future__ import annotations

import numpy as np


def stratified_take(labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (taken, rest), `n` taken with each class in proportion to its count."""
    if not 0 <= n <= len(labels):
        raise ValueError(f"cannot take {n} of {len(labels)} samples")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.floor(counts * n / len(labels)).astype(int)
    # hand the rounding remainder to the classes with the largest fractional parts
    remainder = counts * n / len(labels) - quota
    quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
    taken = []
    for cls, k in zip(classes, quota, strict=True):
        idx = np.flatnonzero(labels == cls)
        taken.append(rng.permutation(idx)[:k])
    taken = np.sort(np.concatenate(taken))
    rest = np.setdiff1d(np.arange(len(labels)), taken, assume_unique=True)
    return taken, rest
