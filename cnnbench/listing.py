"""The tables `cnnbench list` prints."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from cnnbench.data import DATASET_INFO, default_data_root
from cnnbench.models import MODEL_INFO, count_parameters, create_model
from cnnbench.optim import OPTIMIZERS, effective_defaults, optimizer_def


def models_table() -> Table:
    table = Table(title="models (parameters at the native input and class count)")
    for column in ("name", "family", "year", "native input", "parameters", "small input",
                   "description"):
        table.add_column(column, justify="right" if column == "parameters" else "left")
    for name, info in sorted(MODEL_INFO.items()):
        channels, size, _ = info.native_input
        model = create_model(name, in_channels=channels, num_classes=info.native_classes,
                             image_size=size)
        table.add_row(name, info.family, str(info.year), "×".join(map(str, info.native_input)),
                      f"{count_parameters(model):,}", info.small_input, info.description)
    return table


def weight_decay_note(name: str) -> str:
    """How `weight_decay` acts in this optimizer, in a few words."""
    definition = optimizer_def(name)
    if definition.weight_decay == "none":
        return "none (no weight_decay key)"
    if definition.weight_decay == "decoupled":
        return "decoupled: θ ← θ − lr·λ·θ"
    if "decoupled_weight_decay" in effective_defaults(name):
        return "coupled: ∇ + λθ (decoupled_weight_decay: true → decoupled)"
    return "coupled: ∇ + λθ"


def optimizers_table() -> Table:
    table = Table(title="optimizers (every default applies unless the suite sets the key; "
                        "lr only when there is no lr grid)")
    for column in ("name", "class", "defaults", "weight decay", "description"):
        table.add_column(column)
    for name in OPTIMIZERS.names():
        definition = optimizer_def(name)
        defaults = ", ".join(f"{k}={v}" for k, v in effective_defaults(name).items())
        table.add_row(name, f"{definition.source}: {definition.cls.__name__}", defaults,
                      weight_decay_note(name), definition.description)
    return table


def datasets_table(root: Path | None = None) -> Table:
    """Each dataset, and where it is found under the data root (default: $CNNBENCH_DATA, cache)."""
    root = root or default_data_root()
    table = Table(title=f"datasets (data root: {root})")
    for column in ("name", "shape", "classes", "sizes", "augment", "found", "description"):
        table.add_column(column)
    for name, info in sorted(DATASET_INFO.items()):
        if info.locate is None:
            found = "always (bundled or generated)"
        else:
            found = info.locate(root) or "not found (downloaded on first use)"
        table.add_row(name, info.shape, str(info.classes), info.sizes, info.augment, found,
                      info.description)
    return table
