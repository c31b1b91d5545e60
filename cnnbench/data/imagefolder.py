"""imagefolder: your own images, one sub-folder per class (`root/<class>/*.png|jpg|…`).

With `root/train/<class>/` and `root/test/<class>/` those are the splits; otherwise a stratified,
seeded `test_fraction` (default 0.2) of the images is the test set. Images are converted to RGB
(or grey with `channels: 1`) and resized to `image_size` (default: the first image's size).

Decoding is the slow part (CIFAR-10's 60,000 JPEGs take ~10 s on one core), so it runs in a
process pool and happens once: the arrays are cached as one uncompressed .npz in the per-user
cache, keyed by the folder, every file's size and mtime, and the options.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cnnbench.data.registry import ArrayDataset, default_data_root, register_dataset
from cnnbench.data.split import stratified_take
from cnnbench.errors import CnnbenchError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
DEFAULT_TEST_FRACTION = 0.2
SPLIT_SEED = 0
CHUNK = 2000  # images per task in the process pool: large enough to amortise the transfer
POOL_MIN = 4000  # below this a pool costs more than it saves


def _class_files(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    return {d.name: sorted(f for f in d.iterdir() if f.suffix.lower() in EXTENSIONS)
            for d in classes}


def scan(root: Path) -> tuple[tuple[str, ...], dict[str, tuple[list[Path], np.ndarray]]]:
    """Class names, and for each split found on disk ("train"/"test", or "all") paths and labels."""
    if not root.is_dir():
        raise CnnbenchError(f"imagefolder: {root} is not a folder; set dataset.root to a folder "
                            "of class sub-folders (root/<class>/*.png)")
    split_dirs = {s: root / s for s in ("train", "test") if (root / s).is_dir()}
    if len(split_dirs) != 2:
        split_dirs = {"all": root}
    per_split = {s: _class_files(d) for s, d in split_dirs.items()}
    classes = tuple(next(iter(per_split.values())))
    splits = {}
    for split, files in per_split.items():
        extra = sorted(set(files) - set(classes))
        if extra:
            raise CnnbenchError(f"imagefolder: {root / split} has classes {extra} that "
                                f"train/ lacks; the classes are {list(classes)}")
        paths = [p for c in classes for p in files.get(c, [])]
        labels = np.array([i for i, c in enumerate(classes) for _ in files.get(c, [])], np.int64)
        splits[split] = (paths, labels)
    total = sum(len(p) for p, _ in splits.values())
    if len(classes) < 2 or total == 0:
        raise CnnbenchError(f"imagefolder: {root} needs at least 2 class sub-folders holding "
                            f"images ({', '.join(sorted(EXTENSIONS))}); found {len(classes)} "
                            f"classes and {total} images")
    return classes, splits


def _decode(paths: list[Path], size: tuple[int, int], mode: str) -> np.ndarray:
    """Images as uint8 (N, H, W, C); a JPEG is decoded at reduced scale when that suffices."""
    out = np.empty((len(paths), size[1], size[0], len(mode)), np.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im.draft(mode, size)  # JPEG: let the decoder downscale by 2/4/8 for free
                im = im.convert(mode)
                if im.size != size:
                    im = im.resize(size, Image.Resampling.BILINEAR)
                out[i] = np.asarray(im).reshape(size[1], size[0], len(mode))
        except OSError as exc:
            raise CnnbenchError(f"imagefolder: cannot read {path}: {exc}") from None
    return out


def decode_all(paths: list[Path], size: tuple[int, int], mode: str) -> np.ndarray:
    """Every image, in a process pool over the CPU cores when there are many; (N, C, H, W)."""
    workers = min(os.cpu_count() or 1, max(1, len(paths) // CHUNK))
    if len(paths) < POOL_MIN or workers == 1:
        images = _decode(paths, size, mode)
    else:
        chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
        with ProcessPoolExecutor(workers) as pool:
            images = np.concatenate(list(pool.map(_decode, chunks, [size] * len(chunks),
                                                  [mode] * len(chunks))))
    return images.transpose(0, 3, 1, 2)


def _cache_key(root: Path, splits: dict, options: dict) -> str:
    digest = hashlib.sha256(json.dumps({"root": str(root.resolve()), **options}).encode())
    for split, (paths, _) in sorted(splits.items()):
        for path in paths:
            st = path.stat()
            digest.update(f"{split}\0{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n"
                          .encode())
    return digest.hexdigest()[:20]


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_image_folder(root: Path, *, image_size: int | None = None, channels: int = 3,
                      test_fraction: float | None = None, cache_dir: Path | None = None,
                      name: str = "imagefolder") -> ArrayDataset:
    """Read (or load the cached arrays of) an image folder."""
    if channels not in (1, 3):
        raise CnnbenchError(f"imagefolder: channels must be 1 (grey) or 3 (RGB), not {channels}")
    mode = "L" if channels == 1 else "RGB"
    classes, splits = scan(root)
    if "all" in splits and test_fraction is None:
        test_fraction = DEFAULT_TEST_FRACTION
    if "all" not in splits and test_fraction is not None:
        raise CnnbenchError(f"imagefolder: {root} has train/ and test/ folders; test_fraction "
                            "applies only to a folder without them")
    first = next(p for paths, _ in splits.values() for p in paths)
    if image_size:
        size = (image_size, image_size)
    else:
        with Image.open(first) as im:
            size = im.size
    options = {"size": size, "mode": mode, "test_fraction": test_fraction, "classes": classes}
    cache_dir = cache_dir or default_data_root() / "imagefolder-cache"
    cache = cache_dir / f"{root.name}-{_cache_key(root, splits, options)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as arrays:
            return ArrayDataset(name, arrays["x_train"], arrays["y_train"], arrays["x_test"],
                                arrays["y_test"], classes)
    if "all" in splits:
        paths, labels = splits["all"]
        test_idx, train_idx = stratified_take(labels, round(len(labels) * test_fraction),
                                              SPLIT_SEED)
        splits = {"train": ([paths[i] for i in train_idx], labels[train_idx]),
                  "test": ([paths[i] for i in test_idx], labels[test_idx])}
    train_paths, y_train = splits["train"]
    test_paths, y_test = splits["test"]
    images = decode_all(train_paths + test_paths, size, mode)
    arrays = {"x_train": images[:len(train_paths)], "y_train": y_train,
              "x_test": images[len(train_paths):], "y_test": y_test}
    _save_atomic(cache, arrays)
    return ArrayDataset(name, arrays["x_train"], y_train, arrays["x_test"], y_test, classes)


@register_dataset(
    "imagefolder", shape="channels×image_size² (default 3×first image)", classes="sub-folders",
    sizes="as on disk (train/ + test/, or test_fraction)",
    description="your images: root/<class>/*.png|jpg, resized; cached after the first decode",
    locate=lambda root: "the folder named by dataset.root",
)
def imagefolder(config, root: Path) -> ArrayDataset:
    if config.root is None and root == default_data_root():
        raise CnnbenchError("imagefolder: set dataset.root (or --data-dir) to the image folder, "
                            "root/<class>/*.png or root/train/<class>/ + root/test/<class>/")
    return read_image_folder(root, image_size=config.image_size, channels=config.channels or 3,
                             test_fraction=config.test_fraction)
