"""The ready suites that ship inside the package (`cnnbench/suites`, the clone's `suites/`):
found by name (`cnnbench run quickstart`, `lecture/optimizers`), listed, and the starter suite
`cnnbench init` writes. Light: no pydantic, no torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnbench.errors import CnnbenchError

SUITES_DIR = Path(__file__).parent / "suites"
# each packaged suite's name and run count: `cnnbench list suites` reads it instead of expanding
# every suite (torch); tests/test_packaged_index.py checks it against `api.suite_index()`
INDEX = SUITES_DIR / "index.json"


def read_index() -> dict[str, dict[str, Any]]:
    try:
        return json.loads(INDEX.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # absent or damaged: the listing shows no counts
        return {}


def packaged_suites() -> dict[str, Path]:
    """Name (path below the suites folder, without .yaml) → file, sorted by name."""
    if not SUITES_DIR.is_dir():
        return {}
    files = sorted(SUITES_DIR.rglob("*.yaml"))
    return {p.relative_to(SUITES_DIR).with_suffix("").as_posix(): p for p in files}


def resolve_suite(path: str | Path) -> Path:
    """`path` itself when it exists (or looks like a file path); else the packaged suite of
    that name. A bare name that is neither gets the list of packaged names."""
    path = Path(path)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    found = packaged_suites()
    if str(path.as_posix()) in found:
        return found[path.as_posix()]
    names = ", ".join(found) or "none"
    raise CnnbenchError(f"no suite file {str(path)!r} and no packaged suite of that name; "
                        f"packaged: {names}")


def description(path: Path) -> str:
    """The first comment line of a suite file, without its '#'."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


STARTER = """\
# A cnnbench suite: every key is documented in cnnbench's docs (docs/suites.md) and by
# `cnnbench schema` (JSON Schema). Check it with `cnnbench validate {file}`, see its runs with
# `cnnbench plan {file}`, run it with `cnnbench run {file}`.
name: {name}                        # names the results folder: results/{name}
dataset: {{name: mnist-mini, val_size: 1000}}   # bundled, offline; or mnist, cifar10, imagefolder…
train:
  epochs: 2
  batch_size: 128                   # or "full" (full-batch gradient descent) or 1 (pure SGD)
  # schedule: {{name: cosine, warmup_epochs: 1}}
  # target: {{metric: val_acc, value: 0.95}}    # time-to-target is recorded
seeds: 1                            # or a list, e.g. [0, 1, 2]
device: auto                        # auto | cpu | cuda | cuda:1
matrix:                             # the cross product of these axes
  model: [mlp, keras_cnn]           # `cnnbench list models`; or mypkg.nets:TinyNet
  optimizer:                        # `cnnbench list optimizers`
    - sgd
    - {{name: sgd, label: momentum, momentum: 0.9}}
    - adam
  lr: {{log: [1.0e-4, 1.0], num: 5}}  # or a list, e.g. [0.01, 0.1]
# exclude: [{{model: mlp, optimizer: momentum}}]
probes: [time, memory]
"""


def write_starter(name: str, folder: Path) -> Path:
    """Write the commented starter suite `NAME.yaml` into `folder`; never overwrite a file."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise CnnbenchError(f"suite name {name!r}: use letters, digits, '-' and '_'")
    path = folder / f"{name}.yaml"
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(STARTER.format(name=name, file=path.name))
    except FileExistsError:
        raise CnnbenchError(f"{str(path)!r} exists: not overwritten (give another NAME)"
                            ) from None
    return path
