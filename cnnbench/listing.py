"""The tables `cnnbench list` prints."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from cnnbench.data import DATASET_INFO, default_data_root
from cnnbench.models import MODEL_INFO, count_parameters, create_model
from cnnbench.optim import OPTIMIZERS, optimizer_def


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


def optimizers_table() -> Table:
    table = Table(title="optimizers (the defaults apply unless the suite sets a key)")
    for column in ("name", "class", "defaults", "description"):
        table.add_column(column)
    for name in OPTIMIZERS.names():
        definition = optimizer_def(name)
        defaults = ", ".join(f"{k}={v}" for k, v in definition.defaults.items())
        table.add_row(name, f"{definition.source}.{definition.cls.__name__}", defaults,
                      definition.description)
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
