"""The tables `cnnbench list` prints."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from rich.table import Table

from cnnbench.data import DATASET_INFO, DATASETS, default_data_root
from cnnbench.errors import CnnbenchError
from cnnbench.models import MODEL_INFO
from cnnbench.models.registry import ModelInfo
from cnnbench.models.shapes import SHAPE_PATTERN, Shape, parse_input
from cnnbench.optim import OPTIMIZERS, effective_defaults, optimizer_def
from cnnbench.render.numbers import fmt_flops
from cnnbench.train.flops import model_cost


def dataset_input(name: str) -> tuple[Shape, int]:
    """The (C, H, W) input and class count a registered dataset gives its models."""
    DATASETS.get(name)  # unknown names get the registry's message with close matches
    info = DATASET_INFO[name]
    match = SHAPE_PATTERN.search(info.shape)
    if not match:
        raise CnnbenchError(
            f"dataset {name!r} has no fixed input shape ({info.shape}); use --input CxHxW"
        )
    return parse_input(match.group(0)), info.classes


def extra_input(*, dataset: str | None, input_text: str | None,
                classes: int | None) -> dict:
    """The `models_table` options for `--dataset NAME` or `--input CxHxW` (and `--classes`)."""
    if dataset and input_text:
        raise CnnbenchError("give --dataset or --input, not both")
    if classes is not None and not (dataset or input_text):
        raise CnnbenchError("--classes goes with --input or --dataset")
    if dataset:
        shape, num_classes = dataset_input(dataset)
        return {"input_shape": shape, "num_classes": classes or num_classes, "label": dataset}
    if input_text:
        return {"input_shape": parse_input(input_text), "num_classes": classes or 10}
    return {}


def _shape(shape: Shape) -> str:
    return "×".join(map(str, shape))


def _order(item: tuple[str, ModelInfo]) -> tuple:
    """Chronological, then by family, then by name with depths compared as numbers."""
    name, info = item
    return (info.year, info.family,
            [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)])


def models_table(*, input_shape: Shape | None = None, num_classes: int = 10,
                 label: str | None = None, family: str | None = None) -> Table:
    """Every registered model (of `family`, if given) with its parameters and forward FLOPs per
    sample at its native input and class count, and, given `input_shape`, at that input with
    `num_classes` classes."""
    families = sorted({info.family for info in MODEL_INFO.values()})
    if family is not None and family not in families:
        raise CnnbenchError(f"unknown model family {family!r}; known: {', '.join(families)}")
    title = "models — FLOPs: one forward pass of one sample, a multiply-add counted as 2"
    at = label or _shape(input_shape or ())
    if input_shape is not None:
        title += f"; @ {at}: {_shape(input_shape)} input, {num_classes} classes"
    table = Table(title=title)
    for column in ("name", "family", "year", "native input, classes", "params", "FLOPs"):
        table.add_column(column, justify="right" if column in ("params", "FLOPs") else "left")
    if input_shape is not None:
        table.add_column(f"params\n@ {at}", justify="right")
        table.add_column(f"FLOPs\n@ {at}", justify="right")
    table.add_column("small input")
    table.add_column("description")
    for name, info in sorted(MODEL_INFO.items(), key=_order):
        if family is not None and info.family != family:
            continue
        native = model_cost(name, info.native_input, info.native_classes)
        row = [name, info.family, str(info.year),
               f"{_shape(info.native_input)}, {info.native_classes}",
               f"{native.parameters:,}", fmt_flops(native.flops)]
        if input_shape is not None:
            try:
                with warnings.catch_warnings():  # a too-small input warns before it fails
                    warnings.simplefilter("ignore")
                    here = model_cost(name, input_shape, num_classes)
                row += [f"{here.parameters:,}", fmt_flops(here.flops)]
            except Exception:  # e.g. an input too small for the model: a fact for the table
                row += ["fails", "fails"]
        table.add_row(*row, info.small_input, info.description)
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
