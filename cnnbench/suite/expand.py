"""The matrix expanded into sorted, stable `RunSpec`s, each with its run_id."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from pydantic import BaseModel

from cnnbench.errors import SuiteError
from cnnbench.suite.schema import (
    IncludeEntry,
    LogGrid,
    LRSearch,
    OptimizerEntry,
    SearchSpec,
    Suite,
    grid_values,
)
from cnnbench.suite.starts import Start, range_test_spec

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
    round: int = field(default=1, compare=False)  # the lr-search round that proposed it


    def identity(self) -> dict[str, Any]:
        """What makes a run this run: all but the suite name, the label, the probes (they
        measure a run, they do not change it) and the id itself."""
        # the fields as they are (no deep copy: `asdict` made expansion 0.6 ms a run)
        identity = _without_none({f.name: getattr(self, f.name) for f in fields(self)
                                  if f.name not in _NOT_IDENTITY})
        # how many processes share each batch is how a run trains, not which run it is (as an
        # ensemble member keeps its id): the same run_id alone, under torchrun or on 8 GPUs
        identity["train"] = {k: v for k, v in identity["train"].items() if k != "distributed"}
        return identity

    def row(self) -> dict[str, Any]:
        """The `runs` columns that say which run a row is."""
        return {
            "suite": self.suite, "run_id": self.run_id, "model": self.model,
            "model_kwargs": json.dumps(self.model_kwargs, sort_keys=True),
            "optimizer": self.optimizer, "optimizer_name": self.optimizer_name, "lr": self.lr,
            "seed": self.seed, "batch": str(self.batch_size), "dataset": self.dataset["name"],
            "requested_device": self.device, "epochs": self.train["epochs"],
            "schedule": json.dumps(self.train["schedule"], sort_keys=True),
            "round": self.round,
        }


_NOT_IDENTITY = frozenset({"suite", "optimizer", "probes", "run_id", "round"})


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


def _lrs(opt: OptimizerEntry, grid: Any) -> list[float | None]:
    """The optimizer's own grid, else the matrix's, else the registry's default lr; [None] for
    a search with `start: auto` (its range test gives the lrs: `combo_lrs`)."""
    from cnnbench.optim import resolve_hparams

    grid = _grid(opt, grid)
    if isinstance(grid, LRSearch) and grid.search.start == "auto":
        return [None]
    return grid_values(grid) if grid is not None else [resolve_hparams(opt.name)["lr"]]


def _grid(opt: OptimizerEntry, grid: Any) -> Any:
    grid = opt.lr if opt.lr is not None else grid
    if isinstance(grid, dict):
        grid = LRSearch(**grid) if "search" in grid else LogGrid(**grid)
    return grid


def search_of(opt: OptimizerEntry, grid: Any) -> SearchSpec | None:
    """The lr search that decides this optimizer's lrs, if its grid is one."""
    grid = _grid(opt, grid)
    return grid.search if isinstance(grid, LRSearch) else None


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
    `include` entries that change nothing. A search with `start: auto` is one combination with
    lr None: its lrs are the start grid its range test recorded (`combo_lrs`)."""
    matrix = suite.matrix
    optimizers = [o if isinstance(o, OptimizerEntry) else OptimizerEntry(name=o)
                  for o in matrix.optimizer]
    combos: list[dict[str, Any]] = []
    batch_sizes = matrix.batch_size or [suite.train.batch_size]
    for model, opt, batch in itertools.product(matrix.model, optimizers, batch_sizes):
        for lr in _lrs(opt, matrix.lr):
            combos.append({"model": _entry_dict(model)["name"], "model_entry": _entry_dict(model),
                           "optimizer": opt.display, "optimizer_entry": opt,
                           "lr": lr, "batch_size": batch, "search": search_of(opt, matrix.lr)})
    warnings = []
    for i, entry in enumerate(suite.exclude):
        pattern = entry.model_dump(exclude_none=True)
        kept = [c for c in combos if not _matches(c, pattern)]
        if len(kept) == len(combos):
            warnings.append(f"exclude[{i}] {pattern} matches no run")
        combos = kept
    seen = {_combo_key(c) for c in combos}
    for i, extra in enumerate(suite.include):
        added = [c for c in _include(extra, optimizers, suite) if _combo_key(c) not in seen]
        if not added:
            warnings.append(f"include[{i}] {extra.model_dump(exclude_none=True)} adds no run "
                            "(already in the matrix)")
        seen.update(_combo_key(c) for c in added)
        combos += added
    return combos, warnings


def suite_warnings(suite: Suite) -> list[str]:
    return matrix_combos(suite)[1]


def group_name(combo: dict[str, Any]) -> str:
    """The search group of a combination: "model / optimizer / batch N" (and model options)."""
    options = {k: v for k, v in combo["model_entry"].items() if k != "name"}
    extra = f" {json.dumps(options, sort_keys=True)}" if options else ""
    return f"{combo['model']}{extra} / {combo['optimizer']} / batch {combo['batch_size']}"


def combo_lrs(suite: Suite, combo: dict[str, Any], starts: Mapping[str, Start]) -> list[float]:
    """A combination's lr; for a `start: auto` search, the start grid of its recorded range
    test (none while it has no record)."""
    if combo["lr"] is not None:
        return [combo["lr"]]
    start = starts.get(range_test_spec(suite, combo, group_name(combo)).key)
    return list(start.values) if start is not None else []


def expand(suite: Suite, starts: Mapping[str, Start] | None = None) -> list[RunSpec]:
    """The cross product model × optimizer × lr (× batch_size) × seed, minus `exclude`, plus
    `include`; sorted and stable. Each spec carries its run_id. A `start: auto` search adds
    the start grid its range test recorded in `starts` (`suite.starts.read_starts`), if any."""
    combos, _ = matrix_combos(suite)
    specs = []
    for combo in combos:
        # an lr search's first round runs its start grid with the first seed only
        seeds = suite.seed_list[:1] if combo.get("search") else suite.seed_list
        specs += [make_spec(suite, combo, lr, seed)
                  for lr in combo_lrs(suite, combo, starts or {}) for seed in seeds]
    ids = [s.run_id for s in specs]
    if len(set(ids)) != len(ids):
        raise SuiteError("two entries of the matrix resolve to the same run (e.g. an optimizer "
                         "listed twice with the same settings under different labels); "
                         "remove one of them")
    return sorted(specs, key=lambda s: (s.model, s.optimizer, s.lr, str(s.batch_size), s.seed))


def make_spec(suite: Suite, combo: dict[str, Any], lr: float, seed: int, *,
              round: int = 1) -> RunSpec:
    """The run of `combo` (a `matrix_combos` entry) at this lr and seed, with its run_id."""
    from cnnbench.optim.registry import check_values

    opt: OptimizerEntry = combo["optimizer_entry"]
    model_entry = _entry_dict(combo["model_entry"])
    # the optimizer's settings checked once per combination, the lr of each run on its own
    hparams = {**_resolved(opt.name, json.dumps(opt.options, sort_keys=True)), "lr": lr}
    check_values(opt.name, {"lr": lr})
    spec = RunSpec(
        suite=suite.name,
        model=model_entry.pop("name"),
        model_kwargs=model_entry,
        optimizer=opt.display,
        optimizer_name=opt.name,
        hparams=hparams,
        lr=lr,
        seed=seed,
        batch_size=combo["batch_size"],
        dataset=suite.dataset_config.model_dump(),
        train=suite.train.model_dump(exclude={"batch_size"}),
        device=suite.device,
        probes=tuple(suite.probes),
        round=round,
    )
    return replace(spec, run_id=compute_run_id(spec))


@functools.lru_cache(maxsize=256)
def _resolved(name: str, options: str) -> dict[str, Any]:
    """`resolve_hparams` of an optimizer and its options (JSON) at a stand-in lr of 1."""
    from cnnbench.optim import resolve_hparams

    return resolve_hparams(name, {**json.loads(options), "lr": 1.0})


def _include(extra: IncludeEntry, optimizers: list[OptimizerEntry],
             suite: Suite) -> list[dict]:
    """An `include` entry adds one combination: a model, an optimizer label (or name) and an lr."""
    opt = next((o for o in optimizers if o.display == extra.optimizer), None)
    opt = opt or OptimizerEntry(name=extra.optimizer)
    if extra.lr is not None:
        opt = opt.model_copy(update={"lr": extra.lr})
    model = _entry_dict(extra.model)
    batch = extra.batch_size if extra.batch_size is not None else suite.train.batch_size
    return [{"model": model["name"], "model_entry": model, "optimizer": opt.display,
             "optimizer_entry": opt, "lr": lr, "batch_size": batch,
             "search": search_of(opt, suite.matrix.lr)}
            for lr in _lrs(opt, suite.matrix.lr)]
