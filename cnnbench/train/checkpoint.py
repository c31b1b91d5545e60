"""Per-epoch checkpoints, so that a pre-empted or killed run loses at most one epoch.

`<out>/checkpoints/<run_id>.pt` holds a plain dict: the trainer's `state_dict()` (model,
optimizer, scheduler and scaler state, the global torch RNG — CUDA's too — the data-order
generator, the counters, and the device type it was written on), the history so far and the
time so far. It is written atomically (temp file + rename) after every epoch, read back with
`torch.load(weights_only=True)` (no arbitrary unpickling) and removed once the run's result is
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cnnbench.results.files import WriteError, atomic_write

FORMAT_VERSION = 2


class Checkpoint:
    """The checkpoint file of one run."""

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path, self.run_id = Path(path), run_id

    def save(self, state: dict[str, Any]) -> None:
        """Write `state` (plain dicts, lists, numbers and tensors) for this run."""
        state = {**state, "format": FORMAT_VERSION, "run_id": self.run_id}
        what = (f"cannot write the result of run {self.run_id} (its checkpoint "
                f"{str(self.path)!r})")
        advice = "Free space or restore the folder, then run the suite again"
        try:
            self.path.parent.mkdir(exist_ok=True)  # not parents: a vanished folder is an error
        except OSError as exc:
            raise WriteError(f"{what}: {exc.strerror or exc}. {advice}") from None
        atomic_write(self.path, lambda f: torch.save(state, f), what, advice)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it belongs to another run, or to an
        older format)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # damaged or foreign: start the run afresh rather than fail it
            return None
        if state.get("format") != FORMAT_VERSION or state.get("run_id") != self.run_id:
            return None
        return state

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
