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
from cnnbench.train.cost_cache import CostCache


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


def model_rows(*, input_shape: Shape | None = None, num_classes: int = 10,
               family: str | None = None) -> list[dict]:
    """Every registered model (of `family`, if given) with its parameters and forward FLOPs per
    sample at its native input and class count, and, given `input_shape`, at that input with
    `num_classes` classes (None where the model fails at it). Counted once, then cached."""
    families = sorted({info.family for info in MODEL_INFO.values()})
    if family is not None and family not in families:
        raise CnnbenchError(f"unknown model family {family!r}; known: {', '.join(families)}")
    costs = CostCache()
    rows = []
    for name, info in sorted(MODEL_INFO.items(), key=_order):
        if family is not None and info.family != family:
            continue
        native = costs.cost(name, info.native_input, info.native_classes)
        row = {"name": name, "family": info.family, "year": info.year,
               "native_input": _shape(info.native_input), "native_classes": info.native_classes,
               "params": native.parameters, "flops": native.flops}
        if input_shape is not None:
            try:
                with warnings.catch_warnings():  # a too-small input warns before it fails
                    warnings.simplefilter("ignore")
                    here = costs.cost(name, input_shape, num_classes)
                row |= {"params_at_input": here.parameters, "flops_at_input": here.flops}
            except Exception:  # e.g. an input too small for the model: a fact for the table
                row |= {"params_at_input": None, "flops_at_input": None}
        rows.append(row | {"small_input": info.small_input, "description": info.description})
    costs.save()
    return rows


def models_table(rows: list[dict], *, input_shape: Shape | None = None, num_classes: int = 10,
                 label: str | None = None) -> Table:
    """The rows of `model_rows` as a table."""
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
    for row in rows:
        cells = [row["name"], row["family"], str(row["year"]),
                 f"{row['native_input']}, {row['native_classes']}",
                 f"{row['params']:,}", fmt_flops(row["flops"])]
        if input_shape is not None:
            fails = row["params_at_input"] is None
            cells += ["fails" if fails else f"{row['params_at_input']:,}",
                      "fails" if fails else fmt_flops(row["flops_at_input"])]
        table.add_row(*cells, row["small_input"], row["description"])
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


def optimizer_rows() -> list[dict]:
    rows = []
    for name in OPTIMIZERS.names():
        definition = optimizer_def(name)
        rows.append({"name": name, "class": f"{definition.source}: {definition.cls.__name__}",
                     "defaults": effective_defaults(name),
                     "weight_decay": weight_decay_note(name),
                     "description": definition.description})
    return rows


def optimizers_table(rows: list[dict]) -> Table:
    table = Table(title="optimizers (every default applies unless the suite sets the key; "
                        "lr only when there is no lr grid)")
    for column in ("name", "class", "defaults", "weight decay", "description"):
        table.add_column(column)
    for row in rows:
        defaults = ", ".join(f"{k}={v}" for k, v in row["defaults"].items())
        table.add_row(row["name"], row["class"], defaults, row["weight_decay"],
                      row["description"])
    return table


def dataset_rows(root: Path | None = None) -> list[dict]:
    """Each dataset, and where it is found under the data root (default: $CNNBENCH_DATA, cache)."""
    root = root or default_data_root()
    rows = []
    for name, info in sorted(DATASET_INFO.items()):
        if info.locate is None:
            found = "always (bundled or generated)"
        else:
            found = info.locate(root) or "not found (downloaded on first use)"
        rows.append({"name": name, "shape": info.shape, "classes": info.classes,
                     "sizes": info.sizes, "augment": info.augment, "found": str(found),
                     "description": info.description, "data_root": str(root)})
    return rows


def datasets_table(rows: list[dict]) -> Table:
    root = rows[0]["data_root"] if rows else ""
    table = Table(title=f"datasets (data root: {root})")
    for column in ("name", "shape", "classes", "sizes", "augment", "found", "description"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["name"], row["shape"], str(row["classes"]), row["sizes"],
                      row["augment"], row["found"], row["description"])
    return table
