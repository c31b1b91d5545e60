"""Where an lr search with `start: auto` starts: the lr range test of its group (Smith 2017,
`tools/lr_find.py`), run once and recorded in the results folder; round 1 of the group is the
start grid the record holds.

The record, `<out>/lr_find/<key>.json`, is named by a hash of everything the test depends on
(model and options, optimizer and hyper-parameters but the lr, batch size, dataset, device,
seed and the test's own settings), so a changed suite gets a test of its own. Whichever process
needs a record first runs the test and writes it once (`execute/starts.py`: the first writer
wins, later ones keep it); every process then reads round 1 from the record, never from a test
of its own, so shards and Slurm jobs agree on it. This module is pure: it names the tests and
reads the records, it trains nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError, SuiteError
from cnnbench.suite.schema import LogGrid, OptimizerEntry, Suite

RECORDS = "lr_find"  # the records' folder inside the results folder
RECORD_VERSION = 1
# the test: the lr grows geometrically per step from lr_min to lr_max; it stops once the
# smoothed loss passes `diverge` × its minimum (the defaults of `cnnbench lr-find`)
SETTINGS = {"lr_min": 1e-6, "lr_max": 10.0, "steps": 100, "diverge": 4.0}
# the suggested start grid: the two decades below the lr of the lowest smoothed loss (past it
# the loss climbs: too large), five points at half-decade spacing
GRID_DECADES, GRID_POINTS = 2.0, 5


def suggested_grid(min_loss_lr: float) -> tuple[float, float, int]:
    """(low, high, points) of the start grid that a range test's lowest-loss lr suggests."""
    high = float(f"{min_loss_lr:.3g}")
    return float(f"{high / 10 ** GRID_DECADES:.3g}"), high, GRID_POINTS


def suggested_values(min_loss_lr: float) -> list[float]:
    """The lrs of `suggested_grid`, as a log grid writes them."""
    low, high, num = suggested_grid(min_loss_lr)
    return LogGrid(log=(low, high), num=num).values()


@dataclass(frozen=True)
class RangeTestSpec:
    """One group's range test: what it trains, and the record it is kept in."""

    group: str  # the search group's name, for messages
    model: str
    model_kwargs: dict[str, Any]
    optimizer_name: str
    hparams: dict[str, Any]  # the optimizer's, all but the lr (the test sweeps it)
    batch_size: int
    dataset: dict[str, Any]
    device: str
    seed: int
    settings: dict[str, float]

    @property
    def key(self) -> str:
        """`<model>-<optimizer>-<batch>-<hash of the identity>`: readable, and unique."""
        identity = {k: v for k, v in asdict(self).items() if k != "group"}
        blob = json.dumps(identity, sort_keys=True, default=str, separators=(",", ":"))
        digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
        slug = re.sub(r"[^A-Za-z0-9_.]+", "-", f"{self.model}-{self.optimizer_name}-"
                                                f"{self.batch_size}")
        return f"{slug}-{digest}"

    def path(self, out: str | Path) -> Path:
        return Path(out) / RECORDS / f"{self.key}.json"


def range_test_spec(suite: Suite, combo: dict[str, Any], group: str) -> RangeTestSpec:
    """The range test of an auto search's combination (a `matrix_combos` entry)."""
    from cnnbench.optim import resolve_hparams

    if combo["batch_size"] == "full":
        raise SuiteError(f"{group}: start: auto runs the lr range test one batch per step; "
                         "with batch_size full give the start grid as log (with num) or values")
    opt: OptimizerEntry = combo["optimizer_entry"]
    hparams = resolve_hparams(opt.name, {**opt.options, "lr": SETTINGS["lr_min"]})
    hparams.pop("lr")
    entry = dict(combo["model_entry"])
    return RangeTestSpec(group=group, model=entry.pop("name"), model_kwargs=entry,
                         optimizer_name=opt.name, hparams=hparams,
                         batch_size=combo["batch_size"],
                         dataset=suite.dataset_config.model_dump(exclude_none=True),
                         device=suite.device, seed=suite.seed_list[0], settings=dict(SETTINGS))


@dataclass(frozen=True)
class Start:
    """A recorded range test's outcome: round 1's lrs, or why it suggests none."""

    values: tuple[float, ...]  # empty: the test found no lr to start from
    log: tuple[float, float] | None = None  # the grid's ends, for messages
    message: str = ""  # why there are no values


def read_starts(out: str | Path | None) -> dict[str, Start]:
    """The range test records in a results folder, by key (none yet: empty)."""
    folder = Path(out) / RECORDS if out is not None else None
    if folder is None or not folder.is_dir():
        return {}
    starts = {}
    for path in sorted(folder.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            values = tuple(float(v) for v in record["values"])
            log = tuple(record["start"]["log"]) if record.get("start") else None
            if not all(math.isfinite(v) and v > 0 for v in values):
                raise ValueError("an lr is not a positive number")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CnnbenchError(f"{path}: not a readable lr range test record ({exc}); delete "
                                "it to run the test again") from None
        starts[path.stem] = Start(values, log, record.get("message", ""))
    return starts
