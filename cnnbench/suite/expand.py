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
    return hashlib.sha256(_identity_json(spec).encode()).hexdigest()[:12]


def _identity_json(spec: RunSpec) -> str:
    return json.dumps(spec.identity(), sort_keys=True, default=str, separators=(",", ":"))


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
    models = [_entry_dict(model) for model in matrix.model]
    # what an optimizer entry gives each of its combinations, worked out once per entry
    per_optimizer = [(opt, opt.display, _lrs(opt, matrix.lr), search_of(opt, matrix.lr))
                     for opt in optimizers]
    for model, (opt, label, lrs, search), batch in itertools.product(models, per_optimizer,
                                                                      batch_sizes):
        combos += [{"model": model["name"], "model_entry": model, "optimizer": label,
                    "optimizer_entry": opt, "lr": lr, "batch_size": batch, "search": search}
                   for lr in lrs]
    warnings = []
    for i, entry in enumerate(suite.exclude):
        pattern = entry.model_dump(exclude_none=True)
        kept = [c for c in combos if not _matches(c, pattern)]
        if len(kept) == len(combos):
            warnings.append(f"exclude[{i}] {pattern} matches no run")
        combos = kept
    seen = {_combo_key(c) for c in combos} if suite.include else set()
    for i, extra in enumerate(suite.include):
        added = [c for c in _include(extra, optimizers, suite) if _combo_key(c) not in seen]
        if not added:
            warnings.append(f"include[{i}] {extra.model_dump(exclude_none=True)} adds no run "
                            "(already in the matrix)")
        seen.update(_combo_key(c) for c in added)
        combos += added
    return combos, warnings


def suite_warnings(suite: Suite) -> list[str]:
    """What `exclude` and `include` entries change nothing (a suite without them: nothing)."""
    return matrix_combos(suite)[1] if suite.exclude or suite.include else []


def may_search(suite: Suite) -> bool:
    """Whether any lr grid of the suite is a search, found without expanding the matrix (False:
    no combination has one)."""
    grids = [suite.matrix.lr, *(o.lr for o in suite.matrix.optimizer
                                if isinstance(o, OptimizerEntry)),
             *(e.lr for e in suite.include)]
    return any(isinstance(g, LRSearch) or (isinstance(g, dict) and "search" in g)
               for g in grids)


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
    shared = _SuiteParts.of(suite)
    makers: dict[tuple, _SpecMaker] = {}  # the combinations of one lr grid differ in lr alone
    specs = []
    seed_list = suite.seed_list
    for combo in combos:
        # an lr search's first round runs its start grid with the first seed only
        seeds = seed_list[:1] if combo.get("search") else seed_list
        lrs = combo_lrs(suite, combo, starts or {})
        if lrs:
            key = (id(combo["model_entry"]), id(combo["optimizer_entry"]),
                   repr(combo["batch_size"]))
            make = makers.get(key) or makers.setdefault(key, _SpecMaker(suite, combo, shared))
            specs += [make(lr, seed) for lr in lrs for seed in seeds]
    ids = {s.run_id for s in specs}
    if len(ids) != len(specs):
        raise SuiteError("two entries of the matrix resolve to the same run (e.g. an optimizer "
                         "listed twice with the same settings under different labels); "
                         "remove one of them")
    return sorted(specs, key=lambda s: (s.model, s.optimizer, s.lr, str(s.batch_size), s.seed))


def make_spec(suite: Suite, combo: dict[str, Any], lr: float, seed: int, *,
              round: int = 1) -> RunSpec:
    """The run of `combo` (a `matrix_combos` entry) at this lr and seed, with its run_id."""
    return _SpecMaker(suite, combo, _SuiteParts.of(suite))(lr, seed, round=round)


@dataclass(frozen=True)
class _SuiteParts:
    """What every run of a suite shares: worked out once per expansion, not once per run. The
    runs share these dicts too; nothing changes a spec's dicts once it is made."""

    dataset: dict[str, Any]
    train: dict[str, Any]
    probes: tuple[str, ...]

    @classmethod
    def of(cls, suite: Suite) -> _SuiteParts:
        return cls(suite.dataset_config.model_dump(), suite.train.model_dump(
            exclude={"batch_size"}), tuple(suite.probes))


# stand-ins for the values that differ between the runs of one combination, in its identity's
# JSON: the JSON of a run is its combination's with them replaced (see `_SpecMaker`)
_LR, _SEED = "\x00cnnbench-lr\x00", "\x00cnnbench-seed\x00"


class _SpecMaker:
    """Makes the runs of one combination at any lr and seed. What only the lr and the seed
    change is worked out once: the resolved hyper-parameters, and the identity's JSON with
    stand-ins in place of the two, so that a run's id is its combination's JSON with the lr's
    and the seed's JSON put in (the very text `compute_run_id` hashes, at 1/10 of the cost)."""

    def __init__(self, suite: Suite, combo: dict[str, Any], shared: _SuiteParts) -> None:
        from cnnbench.optim.registry import check_values

        self.check_values = check_values  # an lr that is no positive finite float: its message
        opt: OptimizerEntry = combo["optimizer_entry"]
        model_entry = _entry_dict(combo["model_entry"])
        # the optimizer's settings checked once per combination, the lr of each run on its own
        self.hparams = _resolved(opt.name, json.dumps(opt.options, sort_keys=True))
        self.name = opt.name
        self.fields = dict(suite=suite.name, model=model_entry.pop("name"),
                           model_kwargs=model_entry, optimizer=opt.display,
                           optimizer_name=opt.name, batch_size=combo["batch_size"],
                           dataset=shared.dataset, train=shared.train, device=suite.device,
                           probes=shared.probes)
        blob = _identity_json(RunSpec(**self.fields, hparams={**self.hparams, "lr": _LR},
                                      lr=_LR, seed=_SEED))  # type: ignore[arg-type]
        lr, seed = json.dumps(_LR), json.dumps(_SEED)
        if blob.count(lr) != 2 or blob.count(seed) != 1:  # a stand-in's text in a suite value
            self.parts = None
        else:
            head, middle, tail = blob.split(lr)
            self.parts = (head, middle, *tail.split(seed)) if seed in tail else None

    def __call__(self, lr: float, seed: int, *, round: int = 1) -> RunSpec:
        f = self.fields
        hparams = {**self.hparams, "lr": lr}
        if type(lr) is float and 0.0 < lr < math.inf and type(seed) is int and self.parts:
            head, middle, before_seed, tail = self.parts  # the common case, checked here
            text = repr(lr)  # what json writes of a finite float
            blob = f"{head}{text}{middle}{text}{before_seed}{seed}{tail}"
            run_id = hashlib.sha256(blob.encode()).hexdigest()[:12]
            return RunSpec(f["suite"], f["model"], f["model_kwargs"], f["optimizer"],
                           f["optimizer_name"], hparams, lr, seed, f["batch_size"],
                           f["dataset"], f["train"], f["device"], f["probes"], run_id, round)
        self.check_values(self.name, {"lr": lr})
        spec = RunSpec(**f, hparams=hparams, lr=lr, seed=seed, round=round)
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
