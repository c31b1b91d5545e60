"""Per-epoch checkpoints, so that a pre-empted or killed run loses at most one epoch.

`<out>/checkpoints/<run_id>.pt` holds everything a run needs to go on exactly as if it had never
stopped: model, optimizer and scheduler state, the global torch RNG (dropout; CUDA's too) and the
data-order generator, the history so far and the time counters. It is written atomically (temp
file + rename) after every epoch, read back with `torch.load(weights_only=True)` (no arbitrary
unpickling) and removed once the run's result is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cnnbench.store import WriteError, atomic_write

if TYPE_CHECKING:
    from cnnbench.engine import _Trainer

FORMAT_VERSION = 1
COUNTERS = ("steps", "samples", "train_s", "eval_s", "start_loss", "time_to_target_s",
            "grad_norm_rows")


class Checkpoint:
    """The checkpoint file of one run."""

    def __init__(self, path: str | Path, run_id: str) -> None:
        self.path, self.run_id = Path(path), run_id

    def save(self, trainer: _Trainer, history: list[dict[str, Any]], *, epoch: int,
             wall_s: float, start_time: float) -> None:
        """Write the state after `epoch` (wall_s: the run's wall time so far; start_time: when
        it first started, Unix seconds)."""
        device = trainer.device
        state = {
            "format": FORMAT_VERSION, "run_id": self.run_id, "epoch": epoch, "wall_s": wall_s,
            "start_time": start_time,
            "model": trainer.model.state_dict(),
            "optimizer": trainer.optimizer.state_dict(),
            "scheduler": trainer.scheduler.state_dict(),
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "data_rng": trainer.generator.get_state(),
            "history": history,
            "counters": {k: getattr(trainer, k) for k in COUNTERS},
        }
        what = (f"cannot write the result of run {self.run_id} (its checkpoint "
                f"{str(self.path)!r})")
        advice = "Free space or restore the folder, then run the suite again"
        try:
            self.path.parent.mkdir(exist_ok=True)  # not parents: a vanished folder is an error
        except OSError as exc:
            raise WriteError(f"{what}: {exc.strerror or exc}. {advice}") from None
        atomic_write(self.path, lambda f: torch.save(state, f), what, advice)

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none (or it belongs to another run)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # damaged or foreign: start the run afresh rather than fail it
            return None
        if state.get("format") != FORMAT_VERSION or state.get("run_id") != self.run_id:
            return None
        return state

    def restore(self, trainer: _Trainer, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Put `state` back into `trainer`; returns the history rows so far."""
        device = trainer.device
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        if trainer.scaler is not None and state.get("scaler") is not None:
            trainer.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        if device.type == "cuda" and state["cuda_rng"] is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
        trainer.generator.set_state(state["data_rng"])
        for key, value in state["counters"].items():
            setattr(trainer, key, value)
        return list(state["history"])

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
