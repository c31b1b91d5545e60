"""The suite file: its schema (pydantic), YAML loading with file:line errors, `--set` overrides,
and the expansion of the matrix into sorted, stable `RunSpec`s.

Precedence: registry defaults < suite file < `--set` overrides.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError, model_validator

from cnnbench.errors import CnnbenchError, SuiteError

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
    precision: Literal["fp32", "bf16", "fp16"] | None = Field(
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


class Suite(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    dataset: str | DatasetConfig
    train: TrainConfig = TrainConfig()
    seeds: Annotated[int, Field(ge=1)] | Annotated[list[int], Field(min_length=1)] = 1
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    matrix: Matrix
    include: list[dict[str, Any]] = []
    exclude: list[dict[str, Any]] = []
    probes: list[Literal["time", "memory", "flops", "grad_norms"]] = ["time", "memory", "flops"]

    @property
    def dataset_config(self) -> DatasetConfig:
        return self.dataset if isinstance(self.dataset, DatasetConfig) else DatasetConfig(
            name=self.dataset
        )

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)


# ─── Loading, with errors that name file, line and key ────────────────────────────────────────


class _Source:
    """The YAML text's node tree, to find the line of any key path."""

    def __init__(self, file: str, node: yaml.Node | None) -> None:
        self.file, self.node = file, node
        self.overrides: list[tuple[list[str | int], str]] = []  # (key path, the --set text)

    def locate(self, loc: tuple) -> tuple[list[str | int], int | None]:
        """The part of pydantic's `loc` that exists in the document, and its 1-based line."""
        node, path = self.node, []
        line = node.start_mark.line + 1 if node is not None else None
        for part in loc:
            child = None
            if isinstance(node, yaml.MappingNode):
                child = next((v for k, v in node.value if k.value == part), None)
                if child is None and isinstance(part, str):
                    key = next((k for k, _ in node.value if k.value == part), None)
                    child = key
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
                child = node.value[part] if part < len(node.value) else None
            if child is None:
                if isinstance(part, int) or (isinstance(part, str) and not _is_union_tag(part)):
                    path.append(part)
                continue
            path.append(part)
            node, line = child, child.start_mark.line + 1
        return path, line

    def where(self, loc: tuple) -> str:
        path, line = self.locate(loc)
        key = _dotted(path)
        for parts, text in reversed(self.overrides):  # the last --set of a key wins
            if path[:len(parts)] == parts:
                return f"--set {text!r}: {key}"
        return f"{self.file}{f':{line}' if line else ''}" + (f": {key}" if key else "")


def _is_union_tag(part: str) -> bool:
    # pydantic puts the union member it tried into loc: 'str', 'ModelEntry', 'list[...]', ...
    return part[:1].isupper() or part in {"str", "int", "float", "bool"} or "[" in part or (
        part.startswith("literal")
    ) or part in {"constrained-float", "constrained-int", "constrained-str"}


def _dotted(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic model classes an annotation can hold, through unions, lists and Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _unknown_keys(data: Any, model: type[BaseModel], path: tuple) -> list[tuple[tuple, str]]:
    """Keys the schema does not know, with a 'did you mean' and the valid ones, at any depth."""
    if not isinstance(data, dict):
        return []
    errors = []
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            if model.model_config.get("extra") == "forbid":
                close = difflib.get_close_matches(str(key), fields, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                errors.append(
                    ((*path, key), f"unknown key {key!r}{hint} valid: {', '.join(fields)}")
                )
            continue
        for sub in _models_in(fields[key].annotation):
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for i, item in items:
                if isinstance(item, dict):
                    where = (*path, key) if i is None else (*path, key, i)
                    errors += _unknown_keys(item, sub, where)
    return errors


def _raise_for(errors: list[tuple[tuple, str]], source: _Source) -> None:
    located = [(tuple(source.locate(loc)[0]), loc, msg) for loc, msg in errors]
    # a union that failed deeper in one member also fails shallowly in the others: keep the deep one
    deepest = [(loc, msg) for path, loc, msg in located
               if not any(len(other) > len(path) and other[:len(path)] == path
                          for other, _, _ in located)]
    merged: dict[str, list[str]] = {}
    for loc, msg in deepest:
        merged.setdefault(source.where(loc), []).append(msg)
    lines = [f"{where}: {' or '.join(dict.fromkeys(msgs))}" for where, msgs in merged.items()]
    raise SuiteError("invalid suite:\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])


def _read_yaml(path: Path) -> tuple[Any, _Source]:
    if not path.exists():
        raise SuiteError(f"suite file {str(path)!r} does not exist")
    if path.is_dir():
        raise SuiteError(f"suite file {str(path)!r} is a directory; give a .yaml file")
    text = path.read_text()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SuiteError(f"{where}: YAML syntax error: {problem}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a YAML mapping with keys name, dataset, matrix, ...")
    return data, _Source(str(path), node)


def load_suite(path: str | Path, overrides: list[str] | None = None) -> Suite:
    """Read, override and validate a suite file. Raises `SuiteError` naming file, line and key."""
    data, source = _read_yaml(Path(path))
    for override in overrides or []:
        apply_override(data, override)
        key = override.partition("=")[0]
        source.overrides.append(([int(p) if p.isdigit() else p for p in key.split(".")], override))
    return validate_suite(data, source)


def validate_suite(data: dict, source: _Source | None = None) -> Suite:
    source = source or _Source("<suite>", None)
    unknown = _unknown_keys(data, Suite, ())
    if unknown:
        _raise_for(unknown, source)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        _raise_for([(e["loc"], e["msg"]) for e in exc.errors()], source)
    _check_names(suite, source)
    return suite


def _check_names(suite: Suite, source: _Source) -> None:
    """Unknown model/optimizer/dataset names and bad hyper-parameters, before anything runs."""
    from cnnbench.data import DATASETS
    from cnnbench.imports import is_import_path, load_object
    from cnnbench.models import MODELS
    from cnnbench.optim import resolve_hparams
    from cnnbench.schedules import check_schedule

    errors: list[tuple[tuple, str]] = []

    def check(loc: tuple, fn) -> None:
        try:
            fn()
        except CnnbenchError as exc:
            errors.append((loc, str(exc)))

    check(("dataset", "name") if isinstance(suite.dataset, DatasetConfig) else ("dataset",),
          lambda: DATASETS.get(suite.dataset_config.name))
    schedule = suite.train.schedule
    check(("train", "schedule"),
          lambda: check_schedule(schedule if isinstance(schedule, str) else schedule.model_dump(),
                                 epochs=suite.train.epochs))
    for i, entry in enumerate(suite.matrix.model):
        name = entry if isinstance(entry, str) else entry.name
        check(("matrix", "model", i),
              lambda n=name: load_object(n, "model") if is_import_path(n) else MODELS.get(n))
    labels: list[str] = []
    for i, entry in enumerate(suite.matrix.optimizer):
        opt = entry if isinstance(entry, OptimizerEntry) else OptimizerEntry(name=entry)
        if opt.display in labels:
            errors.append((("matrix", "optimizer", i),
                           f"label {opt.display!r} is used twice; give each variant its own "
                           "`label:` so the runs can be told apart"))
        labels.append(opt.display)
        check(("matrix", "optimizer", i),
              lambda o=opt: resolve_hparams(o.name, {"lr": 1.0, **o.options}))
    if errors:
        _raise_for(errors, source)


# ─── --set overrides ───────────────────────────────────────────────────────────────────────────


def apply_override(data: dict, override: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to the raw suite mapping, in place."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise SuiteError(f"--set {override!r}: write it as key.path=value, e.g. train.epochs=1")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    parts = [int(p) if p.isdigit() else p for p in key.split(".")]
    model: type[BaseModel] | None = Suite
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise SuiteError(f"--set {override!r}: {_dotted(parts[:depth])} has no item {part}")
            if last:
                node[part] = value
                return
            if isinstance(node[part], str):
                node[part] = {"name": node[part]}
            node = node[part]
            continue
        if model is not None and model.model_config.get("extra") == "forbid":
            if part not in model.model_fields:
                close = difflib.get_close_matches(part, model.model_fields, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else ""
                raise SuiteError(
                    f"--set {override!r}: unknown key {part!r}{hint} "
                    f"valid: {', '.join(model.model_fields)}"
                )
        field_info = model.model_fields.get(part) if model is not None else None
        if not isinstance(node, dict):
            parent = _dotted(parts[:depth]) or "suite"
            raise SuiteError(f"--set {override!r}: {parent} is not a mapping")
        if last:
            node[part] = value
            return
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif isinstance(child, str):  # `dataset: mnist` → `dataset: {name: mnist}`
            child = node[part] = {"name": child}
        node = child
        subs = _models_in(field_info.annotation) if field_info is not None else []
        model = subs[0] if subs else None


# ─── Expansion into runs ───────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run: everything `engine.train` needs, and its identity."""

    suite: str
    model: str
    model_kwargs: dict[str, Any]
    optimizer: str  # the label shown in reports
    optimizer_name: str
    hparams: dict[str, Any]  # resolved optimizer hyper-parameters, lr included
    lr: float
    seed: int
    batch_size: int | str
    dataset: dict[str, Any]
    train: dict[str, Any]
    device: str
    probes: tuple[str, ...]
    run_id: str = field(default="", compare=False)

    def identity(self) -> dict[str, Any]:
        """What makes a run this run: all but the suite name, the label, the probes (they
        measure a run, they do not change it) and the id itself."""
        d = asdict(self)
        for k in ("suite", "optimizer", "probes", "run_id"):
            d.pop(k)
        return _without_none(d)


def _without_none(value: Any) -> Any:
    """Drop unset options, so that a new optional key does not change existing run_ids."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def compute_run_id(spec: RunSpec) -> str:
    blob = json.dumps(spec.identity(), sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _entry_dict(entry: str | dict | BaseModel) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry}
    return dict(entry) if isinstance(entry, dict) else entry.model_dump(exclude_none=True)


def _lrs(opt: OptimizerEntry, grid: Any) -> list[float]:
    """The optimizer's own grid, else the matrix's, else the registry's default lr."""
    from cnnbench.optim import resolve_hparams

    grid = opt.lr if opt.lr is not None else grid
    if isinstance(grid, dict):
        grid = LogGrid(**grid)
    return grid_values(grid) if grid is not None else [resolve_hparams(opt.name)["lr"]]


def _matches(combo: dict[str, Any], pattern: dict[str, Any]) -> bool:
    for key, want in pattern.items():
        have = combo.get(key)
        if isinstance(want, float) or isinstance(have, float):
            try:
                if not math.isclose(float(have), float(want), rel_tol=1e-9):
                    return False
            except (TypeError, ValueError):
                return False
        elif have != want:
            return False
    return True


PATTERN_KEYS = ("model", "optimizer", "lr", "batch_size")


def _combo_key(combo: dict[str, Any]) -> str:
    return json.dumps([combo["model_entry"], combo["optimizer"], combo["lr"],
                       str(combo["batch_size"])], sort_keys=True, default=str)


def matrix_combos(suite: Suite) -> tuple[list[dict[str, Any]], list[str]]:
    """The (model, optimizer, lr, batch_size) combinations, and warnings about `exclude` and
    `include` entries that change nothing."""
    matrix = suite.matrix
    optimizers = [o if isinstance(o, OptimizerEntry) else OptimizerEntry(name=o)
                  for o in matrix.optimizer]
    for section, entries in (("exclude", suite.exclude), ("include", suite.include)):
        for i, entry in enumerate(entries):
            unknown = sorted(set(entry) - set(PATTERN_KEYS))
            if unknown:
                raise SuiteError(f"{section}[{i}]: unknown key {', '.join(map(repr, unknown))}; "
                                 f"valid: {', '.join(PATTERN_KEYS)}")
    combos: list[dict[str, Any]] = []
    batch_sizes = matrix.batch_size or [suite.train.batch_size]
    for model, opt, batch in itertools.product(matrix.model, optimizers, batch_sizes):
        for lr in _lrs(opt, matrix.lr):
            combos.append({"model": _entry_dict(model)["name"], "model_entry": _entry_dict(model),
                           "optimizer": opt.display, "optimizer_entry": opt,
                           "lr": lr, "batch_size": batch})
    warnings = []
    for i, pattern in enumerate(suite.exclude):
        kept = [c for c in combos if not _matches(c, pattern)]
        if len(kept) == len(combos):
            warnings.append(f"exclude[{i}] {pattern} matches no run")
        combos = kept
    seen = {_combo_key(c) for c in combos}
    for i, extra in enumerate(suite.include):
        added = [c for c in _include(extra, optimizers, suite) if _combo_key(c) not in seen]
        if not added:
            warnings.append(f"include[{i}] {extra} adds no run (already in the matrix)")
        seen.update(_combo_key(c) for c in added)
        combos += added
    return combos, warnings


def suite_warnings(suite: Suite) -> list[str]:
    return matrix_combos(suite)[1]


def expand(suite: Suite) -> list[RunSpec]:
    """The cross product model × optimizer × lr (× batch_size) × seed, minus `exclude`, plus
    `include`; sorted and stable. Each spec carries its run_id."""
    from cnnbench.optim import resolve_hparams

    combos, _ = matrix_combos(suite)
    specs = []
    dataset = suite.dataset_config.model_dump()
    train = suite.train.model_dump(exclude={"batch_size"})
    for combo, seed in itertools.product(combos, suite.seed_list):
        opt: OptimizerEntry = combo["optimizer_entry"]
        model_entry = _entry_dict(combo["model_entry"])
        spec = RunSpec(
            suite=suite.name,
            model=model_entry.pop("name"),
            model_kwargs=model_entry,
            optimizer=opt.display,
            optimizer_name=opt.name,
            hparams=resolve_hparams(opt.name, {**opt.options, "lr": combo["lr"]}),
            lr=combo["lr"],
            seed=seed,
            batch_size=combo["batch_size"],
            dataset=dataset,
            train=train,
            device=suite.device,
            probes=tuple(suite.probes),
        )
        specs.append(RunSpec(**{**asdict(spec), "run_id": compute_run_id(spec)}))
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        raise SuiteError("two entries of the matrix resolve to the same run (e.g. an optimizer "
                         "listed twice with the same settings under different labels); "
                         "remove one of them")
    return sorted(specs, key=lambda s: (s.model, s.optimizer, s.lr, str(s.batch_size), s.seed))


def _include(extra: dict[str, Any], optimizers: list[OptimizerEntry], suite: Suite) -> list[dict]:
    """An `include` entry adds one combination: a model, an optimizer label (or name) and an lr."""
    missing = {"model", "optimizer"} - set(extra)
    if missing:
        raise SuiteError(f"include entry {extra}: needs {', '.join(sorted(missing))}")
    extra = copy.deepcopy(extra)
    opt = next((o for o in optimizers if o.display == extra["optimizer"]), None)
    opt = opt or OptimizerEntry(name=extra["optimizer"])
    if "lr" in extra:
        opt = opt.model_copy(update={"lr": extra["lr"]})
    model = _entry_dict(extra["model"])
    return [{"model": model["name"], "model_entry": model, "optimizer": opt.display,
             "optimizer_entry": opt, "lr": lr,
             "batch_size": extra.get("batch_size", suite.train.batch_size)}
            for lr in _lrs(opt, suite.matrix.lr)]
