"""One training epoch through cnnbench's device-resident pipeline vs a torch DataLoader pipeline.

Same data (a stratified subset of the real CIFAR-10 JPEGs in ../shared/data, read by the
imagefolder reader), same augmentation (random crop with 4-pixel zero padding + horizontal flip),
same normalisation, same model (ResNet-20, He et al. 2016, option-A shortcuts, 0.27 M parameters,
seeded), same optimizer (SGD momentum 0.9), batch 128, CPU. The DataLoader pipeline is the usual
hand-written one: a map-style Dataset that augments one uint8 image at a time, default collate.

Budget: two warm-up steps per pipeline outside the clock, then `--repeats` timed epochs per
pipeline, interleaved so that load from other processes hits all alike; medians are reported, with
the pipeline alone (batches drawn, no model) timed the same way. Run:

    python benchmarks/data_pipeline.py    # ~3 min on 2 idle cores; --per-class 50: 500 images
"""

from __future__ import annotations

import argparse
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from cnnbench.data import DeviceData
from cnnbench.data.device import STANDARD
from cnnbench.data.imagefolder import read_image_folder

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"
BATCH = 128
LR = 0.05

# ─── ResNet-20 (cnnbench's own registry entry is being written elsewhere; this is the paper's) ───


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin  # option A: subsample and zero-pad the identity, no parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x
        if self.pad:
            half = self.pad // 2
            shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.pad - half))
        return F.relu(out + shortcut)


def resnet20(num_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            layers.append(Block(cin, cout, stride if i == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes)]
    return nn.Sequential(*layers)


# ─── The DataLoader pipeline ───────────────────────────────────────────────────────────────────


class AugmentedArray(Dataset):
    """Per-sample crop + flip + normalise of a uint8 (N, C, H, W) array, as DataLoader code does."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
        self.x, self.y = x, y
        self.mean, self.std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        self.rng = np.random.default_rng(0)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        padded = np.pad(self.x[i], ((0, 0), (4, 4), (4, 4)))
        dy, dx = self.rng.integers(0, 9, 2)
        image = padded[:, dy:dy + 32, dx:dx + 32]
        if self.rng.random() < 0.5:
            image = image[:, :, ::-1]
        image = (image.astype(np.float32) / 255 - self.mean) / self.std
        return torch.from_numpy(image), int(self.y[i])


# ─── Measurement ───────────────────────────────────────────────────────────────────────────────


def extract_subset(archive: Path, dest: Path, per_class: int) -> Path:
    """The first `per_class` training images of each class (and as many test images)."""
    with tarfile.open(archive) as tar:
        members = []
        for member in tar:
            parts = Path(member.name).parts
            if member.isfile() and len(parts) >= 3 and int(Path(parts[-1]).stem) < per_class:
                members.append(member)
        tar.extractall(dest, members=members, filter="data")
    return dest


def epoch(batches: Callable[[], Iterable], model: nn.Module | None,
          max_steps: int | None = None) -> float:
    """Seconds for one pass (or `max_steps` steps) of training, or of drawing batches alone."""
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9) if model else None
    start = time.perf_counter()
    for step, (x, y) in enumerate(batches()):
        if step == max_steps:
            break
        if model is not None:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=50, help="training images per class")
    parser.add_argument("--repeats", type=int, default=2, help="timed epochs per pipeline")
    parser.add_argument("--archive", type=Path, default=SHARED)
    args = parser.parse_args()
    torch.manual_seed(0)

    with tempfile.TemporaryDirectory() as tmp:
        folder = extract_subset(args.archive, Path(tmp) / "cifar10", args.per_class)
        arrays = read_image_folder(folder, cache_dir=Path(tmp) / "cache")
    device_data = DeviceData(arrays, torch.device("cpu"), val_size=0, augment=STANDARD)
    mean = device_data.mean.flatten().numpy()
    std = device_data.std.flatten().numpy()
    dataset = AugmentedArray(arrays.x_train, arrays.y_train, mean, std)
    generator = torch.Generator().manual_seed(0)
    pipelines = {
        "device-resident (cnnbench)": lambda: device_data.train_batches(BATCH, generator),
        "DataLoader, 0 workers": lambda: DataLoader(dataset, BATCH, shuffle=True),
        "DataLoader, 2 workers": lambda: DataLoader(dataset, BATCH, shuffle=True, num_workers=2,
                                                    persistent_workers=False),
    }
    print(f"{len(arrays.y_train)} CIFAR-10 training images (JPEG), ResNet-20, batch {BATCH}, "
          f"CPU, {torch.get_num_threads()} torch threads, {args.repeats} timed epochs each")
    init = resnet20().state_dict()
    models = {name: resnet20() for name in pipelines}
    for name, model in models.items():
        model.load_state_dict(init)
        epoch(pipelines[name], model, max_steps=2)  # warm-up, outside the clock
    train_s: dict[str, list[float]] = {name: [] for name in pipelines}
    data_s: dict[str, list[float]] = {name: [] for name in pipelines}
    for _ in range(args.repeats):
        for name, batches in pipelines.items():
            train_s[name].append(epoch(batches, models[name]))
            data_s[name].append(epoch(batches, None))
            print(f"  {name}: epoch {train_s[name][-1]:.2f} s, data only {data_s[name][-1]:.3f} s",
                  flush=True)
    base = statistics.median(train_s["device-resident (cnnbench)"])
    base_data = statistics.median(data_s["device-resident (cnnbench)"])
    print(f"{'pipeline':28} {'epoch s':>8} {'ratio':>6} {'data only s':>12} {'ratio':>7}")
    for name in pipelines:
        t, d = statistics.median(train_s[name]), statistics.median(data_s[name])
        print(f"{name:28} {t:8.2f} {t / base:6.2f} {d:12.3f} {d / base_data:7.1f}")
    print("ratio = time / the device-resident pipeline's time (higher: slower than cnnbench)")


if __name__ == "__main__":
    main()
