"""Optimizer trajectories on 2-D test functions: the lecture's picture of how optimizers move.

Each optimizer comes from the same registry (and implementation) as training, and steps a single
2-D parameter from a fixed start. The computation (`trajectory`, `run_trajectories`, `summarize`)
is pure and returns arrays and rows; `plot_trajectories` / `animate_trajectories` draw them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cnnbench.errors import CnnbenchError
from cnnbench.optim import create_optimizer, resolve_hparams
from cnnbench.registry import Registry
from cnnbench.render.style import series_style

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


@dataclass(frozen=True)
class TestFunction:
    """A 2-D function f(x, y) written with torch ops (so it works on points and on grids)."""

    name: str
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    start: tuple[float, float]
    target: tuple[float, float]  # the minimum; for a saddle, the saddle point
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    steps: int  # default number of optimizer steps
    lrs: dict[str, float] = field(default_factory=dict)  # default lr per optimizer
    log_levels: bool = False  # contour levels spaced geometrically (steep functions)
    is_saddle: bool = False
    formula: str = ""

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.f(x, y)

    def value(self, point: tuple[float, float] | np.ndarray) -> float:
        x, y = (torch.tensor(float(v), dtype=torch.float64) for v in point)
        return float(self.f(x, y))

    def default_lr(self, optimizer: str) -> float:
        """This function's tuned lr for `optimizer`, else the registry's default lr."""
        return self.lrs.get(optimizer) or resolve_hparams(optimizer)["lr"]


FUNCTIONS: Registry[Callable[[], TestFunction]] = Registry("test function")


@FUNCTIONS.register
def ravine() -> TestFunction:
    # condition number 100: steep across (y), shallow along (x); SGD is stable only for lr < 1
    return TestFunction(
        "ravine", lambda x, y: 0.01 * x**2 + y**2, start=(-9.0, 1.5), target=(0.0, 0.0),
        xlim=(-10.0, 2.0), ylim=(-2.0, 2.0), steps=80, formula="f = 0.01x² + y²",
        lrs={"sgd": 0.95, "momentum": 0.25, "nesterov": 0.25, "adagrad": 1.5, "rmsprop": 0.1,
             "adam": 0.3, "adamw": 0.5, "nadam": 0.5, "radam": 0.5, "adamax": 0.5,
             "adadelta": 50.0, "qhm": 1.0, "qhadam": 0.5, "aggmo": 0.05, "lbfgs": 1.0})


@FUNCTIONS.register
def saddle() -> TestFunction:
    return TestFunction(
        "saddle", lambda x, y: x**2 - y**2, start=(1.5, 1e-3), target=(0.0, 0.0),
        xlim=(-2.0, 2.0), ylim=(-2.0, 2.0), steps=60, is_saddle=True, formula="f = x² − y²",
        lrs={"sgd": 0.05, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.3, "rmsprop": 0.05,
             "adam": 0.1, "adamw": 0.1, "nadam": 0.1, "radam": 0.1, "adamax": 0.1,
             "adadelta": 5.0, "qhm": 0.1, "qhadam": 0.1, "aggmo": 0.05, "lbfgs": 0.1})


@FUNCTIONS.register
def rosenbrock() -> TestFunction:
    return TestFunction(
        "rosenbrock", lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2, start=(-1.5, 2.0),
        target=(1.0, 1.0), xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), steps=1000, log_levels=True,
        formula="f = (1 − x)² + 100(y − x²)²",
        lrs={"sgd": 1e-3, "momentum": 2e-4, "nesterov": 2e-4, "adagrad": 0.5, "rmsprop": 0.01,
             "adam": 0.05, "adamw": 0.05, "nadam": 0.05, "radam": 0.01, "adamax": 0.05,
             "adadelta": 20.0, "qhm": 2e-3, "qhadam": 0.05, "aggmo": 1e-4, "lbfgs": 1.0})


@FUNCTIONS.register
def beale() -> TestFunction:
    return TestFunction(
        "beale",
        lambda x, y: ((1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2
                      + (2.625 - x + x * y**3) ** 2),
        start=(1.0, 1.5), target=(3.0, 0.5), xlim=(-4.5, 4.5), ylim=(-4.5, 4.5), steps=1000,
        log_levels=True, formula="f = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²",
        lrs={"sgd": 1e-3, "momentum": 1e-4, "nesterov": 1e-4, "adagrad": 0.5, "rmsprop": 0.01,
             "adam": 0.05, "adamw": 0.05, "nadam": 0.05, "radam": 0.01, "adamax": 0.05,
             "adadelta": 20.0, "qhm": 1e-3, "qhadam": 0.05, "aggmo": 1e-4, "lbfgs": 1.0})


# ─── Computation (pure) ───────────────────────────────────────────────────────────────────────


def _escape_box(function: TestFunction) -> tuple[float, float, float, float]:
    """The plot area grown by half its size on each side: a path that leaves it has escaped (the
    saddle) or diverged, and stops there."""
    (x0, x1), (y0, y1) = function.xlim, function.ylim
    dx, dy = (x1 - x0) / 2, (y1 - y0) / 2
    return x0 - dx, x1 + dx, y0 - dy, y1 + dy


def trajectory(function: TestFunction, optimizer: str, *, lr: float, steps: int) -> np.ndarray:
    """The points (steps+1, 2) an optimizer visits from the function's start, in float64; it ends
    early when the point leaves the escape box or stops being finite."""
    point = torch.tensor(function.start, dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(optimizer, [point], lr=lr)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = function(point[0], point[1])
        loss.backward()
        return loss

    x_lo, x_hi, y_lo, y_hi = _escape_box(function)
    path = [point.detach().clone()]
    for _ in range(steps):
        opt.step(closure)
        path.append(point.detach().clone())
        x, y = path[-1].tolist()
        if not (math.isfinite(x) and math.isfinite(y) and x_lo <= x <= x_hi and y_lo <= y <= y_hi):
            break
    return torch.stack(path).numpy()


def run_trajectories(function: TestFunction, optimizers: list[str], *,
                     lrs: dict[str, float] | None = None, steps: int | None = None
                     ) -> dict[str, tuple[float, np.ndarray]]:
    """optimizer → (lr used, path), for each optimizer; `lrs` overrides the function's defaults."""
    lrs = lrs or {}
    steps = steps or function.steps
    out = {}
    for name in optimizers:
        lr = lrs.get(name) or function.default_lr(name)
        out[name] = (lr, trajectory(function, name, lr=lr, steps=steps))
    return out


def summarize(function: TestFunction, paths: dict[str, tuple[float, np.ndarray]]
              ) -> list[dict[str, Any]]:
    """One row per optimizer: where it ended, its distance to the target and its final value."""
    target = np.array(function.target)
    rows = []
    for name, (lr, path) in paths.items():
        end = path[-1]
        rows.append({"optimizer": name, "lr": lr, "steps": len(path) - 1,
                     "x": float(end[0]), "y": float(end[1]),
                     "start_distance": float(np.linalg.norm(path[0] - target)),
                     "distance": float(np.linalg.norm(end - target)),
                     "loss": function.value(end)})
    return rows


def parse_lrs(text: str | None, optimizers: list[str]) -> dict[str, float]:
    """`--lr 0.1` (every optimizer) or `--lr sgd=0.05,adam=0.3` (those named)."""
    if not text:
        return {}
    try:
        if "=" not in text:
            return dict.fromkeys(optimizers, float(text))
        pairs = (item.split("=", 1) for item in text.split(","))
        lrs = {name.strip(): float(value) for name, value in pairs}
    except ValueError:
        raise CnnbenchError(f"--lr {text!r}: give one number or name=value pairs, "
                            "e.g. --lr 0.1 or --lr sgd=0.05,adam=0.3") from None
    stray = sorted(set(lrs) - set(optimizers))
    if stray:
        raise CnnbenchError(f"--lr names {', '.join(stray)}, not among --optimizers "
                            f"{','.join(optimizers)}")
    return lrs


# ─── Drawing ──────────────────────────────────────────────────────────────────────────────────


def _style(i: int) -> dict[str, Any]:
    # earlier paths are drawn wider, so that a later one on the same track leaves them visible
    style = series_style(i)
    return {"color": style["color"], "linestyle": style["linestyle"],
            "linewidth": max(1.0, 3.0 - 0.35 * i)}


def plot_trajectories(function: TestFunction, paths: dict[str, tuple[float, np.ndarray]]):
    """The paths over the function's contour plot: start ●, minimum ★ (saddle point ✕).
    Returns (figure, the line of each optimizer) for the caller to save or animate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = torch.linspace(*function.xlim, 300, dtype=torch.float64)
    ys = torch.linspace(*function.ylim, 300, dtype=torch.float64)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    z = function(grid_x, grid_y).numpy()
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=110)
    if function.log_levels:
        levels = np.logspace(np.log10(max(z.min(), 1e-3)), np.log10(z.max()), 25)
    else:
        levels = 25
    ax.contour(xs.numpy(), ys.numpy(), z, levels=levels, cmap="Greys", linewidths=0.6)
    lines = {}
    for i, (name, (lr, path)) in enumerate(paths.items()):
        (lines[name],) = ax.plot(path[:, 0], path[:, 1], marker=".", markersize=3,
                                 label=f"{name} (lr={lr:g})", **_style(i))
    ax.plot(*function.start, "o", color="black", markersize=8, label="start", zorder=5)
    ax.plot(*function.target, "X" if function.is_saddle else "*", color="black", markersize=13,
            label="saddle point" if function.is_saddle else "minimum", zorder=5)
    ax.set(xlim=function.xlim, ylim=function.ylim, xlabel="x", ylabel="y",
           title=f"{function.name}: {function.formula}")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    return fig, lines


def save_trajectories(function: TestFunction, paths: dict[str, tuple[float, np.ndarray]],
                      out: Path, *, gif: bool = False, frames: int = 60) -> Path:
    """Write the picture (PNG, or any format matplotlib knows from the suffix), or with `gif`
    an animation of the paths growing, to `out`; returns the path written."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, lines = plot_trajectories(function, paths)
    try:
        if gif:
            _animate(fig, lines, paths, out.with_suffix(".gif"), frames)
            return out.with_suffix(".gif")
        fig.savefig(out)
        return out
    finally:
        plt.close(fig)


def _animate(fig, lines: dict, paths: dict[str, tuple[float, np.ndarray]], out: Path,
             frames: int) -> None:
    try:
        import PIL  # noqa: F401  (PillowWriter needs it)
    except ImportError:
        raise CnnbenchError("--gif needs the pillow package: pip install pillow") from None
    from matplotlib.animation import FuncAnimation, PillowWriter

    longest = max(len(path) for _, path in paths.values())
    ends = np.unique(np.linspace(1, longest, min(frames, longest)).round().astype(int))

    def draw(end: int):
        for name, (_, path) in paths.items():
            lines[name].set_data(path[:end, 0], path[:end, 1])
        return list(lines.values())

    FuncAnimation(fig, draw, frames=ends).save(out, writer=PillowWriter(fps=12))


def draw_trajectories(function: str, optimizers: list[str] | None = None, *, lr: str | None = None,
                      steps: int | None = None, out: Path, gif: bool = False
                      ) -> tuple[list[dict[str, Any]], Path]:
    """What `cnnbench trajectories` does: run, summarize, save; returns (rows, file written)."""
    test_function = FUNCTIONS.get(function)()
    optimizers = optimizers or list(DEFAULT_OPTIMIZERS)
    paths = run_trajectories(test_function, optimizers, lrs=parse_lrs(lr, optimizers),
                             steps=steps)
    return summarize(test_function, paths), save_trajectories(test_function, paths, out, gif=gif)
