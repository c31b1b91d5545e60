"""Run the lr range tests that `start: auto` searches wait for, and record each once.

A record (`suite/starts.py` names it) holds the curve's summary, the curve itself and the start
grid it suggests. It is written through a temp file and a hard link, which never replaces a
file already there: when two processes (shards, jobs) run the same test at once, the first
record written is the one every process reads from then on. On a CPU the seeded test gives the
same curve in any process anyway; on a GPU, where kernels need not be deterministic, the first
writer decides.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.errors import CnnbenchError
from cnnbench.execute.progress import PlainReporter
from cnnbench.suite import Suite
from cnnbench.suite.starts import RECORD_VERSION, RangeTestSpec, suggested_grid, suggested_values

if TYPE_CHECKING:  # annotations only: torch loads when a test runs
    from cnnbench.data import DeviceData


def run_range_tests(suite: Suite, out: str | Path, tests: list[RangeTestSpec], *,
                    data_dir: str | None, reporter: PlainReporter) -> None:
    """Run each test not yet recorded in `out` and write its record (the data loaded once)."""
    if not tests:
        return
    from cnnbench.execute.local import prepare_data
    from cnnbench.results.files import atomic_write
    from cnnbench.train.devices import resolve_device, use_device

    device = resolve_device(suite.device)
    use_device(device)
    data = prepare_data(suite.dataset_config, device, data_dir)
    for test in tests:
        path = test.path(out)
        if path.exists():  # another process recorded it meanwhile
            continue
        settings = test.settings
        reporter.log(f"lr search: range test of {test.group} ({int(settings['steps'])} steps, lr "
                     f"{settings['lr_min']:g} to {settings['lr_max']:g}, seed {test.seed})")
        try:
            record = _record(test, data, str(device))
        except CnnbenchError:
            raise
        except Exception as exc:  # a broken model, too little memory: said, never recorded
            raise CnnbenchError(f"lr range test of {test.group}: {type(exc).__name__}: {exc}; "
                                "nothing was recorded for it: fix that and re-run") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        text = (json.dumps(record, indent=1) + "\n").encode()
        atomic_write(path, lambda f, text=text: f.write(text), f"lr range test record {path}",
                     "Free space or fix the folder, then re-run the same command.",
                     keep_existing=True)
        found = json.loads(path.read_text())  # ours, or the record another process won with
        grid = (f"log [{found['start']['log'][0]:g}, {found['start']['log'][1]:g}], "
                f"{found['start']['num']} points" if found["start"] else found["message"])
        reporter.log(f"  start grid: {grid} (recorded in {path})")


def _record(test: RangeTestSpec, data: DeviceData, device: str) -> dict[str, Any]:
    """Run the test; its record. A loss not finite from the first step is an outcome too (the
    seeded test would give it again): the record then says so and holds no start grid."""
    import torch

    from cnnbench.tools.lr_find import NoFiniteLoss, range_test

    settings = test.settings
    started = time.perf_counter()
    head = {"version": RECORD_VERSION, "group": test.group, "key": test.key,
            "test": {k: v for k, v in asdict(test).items() if k != "group"},
            "device_used": device, "torch": torch.__version__}
    try:
        curve = range_test(test.model, data, test.optimizer_name,
                           model_kwargs=test.model_kwargs, hparams=test.hparams,
                           lr_min=settings["lr_min"], lr_max=settings["lr_max"],
                           steps=int(settings["steps"]), batch_size=test.batch_size,
                           seed=test.seed, diverge=settings["diverge"])
    except NoFiniteLoss as exc:
        return {**head, "values": [], "start": None, "message": str(exc)}
    low, high, num = suggested_grid(curve.min_loss_lr)
    return {**head, "wall_s": round(time.perf_counter() - started, 3),
            "steps_run": len(curve.lrs), "stopped_early": curve.stopped_early,
            "min_loss": min(curve.smoothed), "min_loss_lr": curve.min_loss_lr,
            "start": {"log": [low, high], "num": num},
            "values": suggested_values(curve.min_loss_lr), "message": "",
            "curve": {"lr": curve.lrs, "loss": curve.losses, "smoothed": curve.smoothed}}
