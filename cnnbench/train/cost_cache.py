"""Parameters and FLOPs of registered models, computed once per (model, input, classes) and kept
in the user's cache folder, so that `cnnbench list models` does not trace every model at every
call.

An entry is keyed by the hash of the model's family file and of the shared layers, and by the
torch version (whose FLOP formulas count): editing a model's code, or upgrading torch, recounts
it. The figures are the ones `model_cost` computes, exactly. `CNNBENCH_CACHE` overrides the
cache folder (tests point it at a temporary one).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
from pathlib import Path

import torch

from cnnbench.models import MODELS
from cnnbench.models import layers as shared_layers
from cnnbench.train.flops import ModelCost, model_cost

CACHE_FILE = "model_costs.json"


def cache_dir() -> Path:
    """$CNNBENCH_CACHE, else the platform's per-user cache folder for cnnbench."""
    if os.environ.get("CNNBENCH_CACHE"):
        return Path(os.environ["CNNBENCH_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("cnnbench"))


_HASHES: dict[str, str] = {}  # family file → its code hash, once per process


def _code_hash(name: str) -> str:
    family_file = inspect.getsourcefile(MODELS.get(name))
    if family_file not in _HASHES:
        digest = hashlib.sha256(torch.__version__.encode())
        for path in (family_file, inspect.getsourcefile(shared_layers)):
            digest.update(Path(path).read_bytes())
        _HASHES[family_file] = digest.hexdigest()[:16]
    return _HASHES[family_file]


class CostCache:
    """The cache file, read once; `cost` fills it, `save` writes it back atomically when
    something new was counted. A damaged or unreadable file counts as empty."""

    def __init__(self, folder: Path | None = None):
        self.path = (folder or cache_dir()) / CACHE_FILE
        self.changed = False
        try:
            self.entries: dict[str, list[int]] = json.loads(self.path.read_text())
            if not isinstance(self.entries, dict):
                self.entries = {}
        except (OSError, ValueError):
            self.entries = {}

    def cost(self, name: str, input_shape: tuple[int, int, int], num_classes: int) -> ModelCost:
        key = f"{name}|{'x'.join(map(str, input_shape))}|{num_classes}|{_code_hash(name)}"
        found = self.entries.get(key)
        if isinstance(found, list) and len(found) == 2:
            return ModelCost(int(found[0]), int(found[1]))
        cost = model_cost(name, input_shape, num_classes)
        self.entries[key] = [cost.parameters, cost.flops]
        self.changed = True
        return cost

    def save(self) -> None:
        """Write the entries back if any is new; a read-only cache folder is not an error (the
        figures were computed all the same)."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                json.dump(self.entries, f)
            os.replace(tmp, self.path)
        except OSError:
            return
        self.changed = False
