"""synthetic: random but learnable images of any shape and class count, from a seed.

Each class has a random prototype image; a sample is its class prototype plus uniform noise,
so accuracy climbs above chance quickly. For speed tests and tests of the harness itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cnnbench.data.registry import ArrayDataset, register_dataset


def make_synthetic(
    *, channels: int, image_size: int, num_classes: int, train_size: int, test_size: int,
    seed: int = 0,
) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    shape = (channels, image_size, image_size)
    prototypes = rng.integers(0, 256, size=(num_classes, *shape)).astype(np.int16)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        noise = rng.integers(-96, 97, size=(n, *shape), dtype=np.int16)
        images = np.clip(prototypes[labels] + noise, 0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    x_train, y_train = draw(train_size)
    x_test, y_test = draw(test_size)
    classes = tuple(f"class{i}" for i in range(num_classes))
    return ArrayDataset("synthetic", x_train, y_train, x_test, y_test, classes)


@register_dataset(
    "synthetic", shape="channels×image_size² (default 3×32×32)", classes=10,
    sizes="train_size / test_size (default 1,000 / 200)",
    description="seeded random class prototypes + noise; any shape, for speed tests",
)
def synthetic(config, root: Path) -> ArrayDataset:
    return make_synthetic(
        channels=config.channels or 3,
        image_size=config.image_size or 32,
        num_classes=config.num_classes or 10,
        train_size=config.train_size or 1000,
        test_size=config.test_size or 200,
        seed=config.seed,
    )
