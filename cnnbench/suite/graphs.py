"""What `train: {graphs: true}` cannot capture, said at validation: a CUDA graph replays one
fixed sequence of kernels on fixed shapes, with nothing read back by the host inside it."""

from __future__ import annotations

from cnnbench.errors import CnnbenchError
from cnnbench.suite.schema import IncludeEntry, OptimizerEntry, Suite

_HOW = "drop graphs: true, or"


def graph_errors(suite: Suite) -> list[tuple[tuple, str]]:
    """(location, message) of each setting `graphs: true` cannot capture; none without it."""
    train = suite.train
    if not train.graphs:
        return []
    errors: list[tuple[tuple, str]] = []
    sizes = [train.batch_size, *(suite.matrix.batch_size or []),
             *(e.batch_size for e in suite.include)]
    if "full" in sizes:
        errors.append((("train", "batch_size"),
                       "graphs: true captures one mini-batch step; full-batch steps accumulate "
                       f"chunks of the whole data: {_HOW} use a batch size"))
    if train.precision == "fp16":
        errors.append((("train", "precision"),
                       "graphs: true cannot capture fp16's GradScaler, which reads on the host "
                       f"whether a step overflowed: {_HOW} use precision bf16"))
    if train.compile:
        errors.append((("train", "compile"),
                       f"graphs: true and compile: true both rebuild the step: {_HOW} drop "
                       "compile: true"))
    if train.channels_last:
        errors.append((("train", "channels_last"),
                       "graphs: true trains through the stacked step, which runs the model in "
                       f"its default layout: {_HOW} drop channels_last: true"))
    optimizers = [(("matrix", "optimizer", i), e if isinstance(e, OptimizerEntry)
                   else OptimizerEntry(name=e)) for i, e in enumerate(suite.matrix.optimizer)]
    labels = {entry.display for _, entry in optimizers}
    optimizers += [(("include", i, "optimizer"), OptimizerEntry(name=e.optimizer))
                   for i, e in enumerate(suite.include)
                   if isinstance(e, IncludeEntry) and e.optimizer not in labels]
    for loc, entry in optimizers:
        problem = _uncapturable(entry)
        if problem:
            errors.append((loc, f"graphs: true captures the optimizer's update too, and "
                                f"{entry.name!r} {problem}: {_HOW} train it without"))
    return errors


def _uncapturable(entry: OptimizerEntry) -> str | None:
    """Why the optimizer's update cannot be captured, or None."""
    from cnnbench.optim.fused import FUSED_RULES
    from cnnbench.optim.registry import needs_closure, optimizer_def

    try:
        cls = optimizer_def(entry.name).cls
        if needs_closure(entry.name):
            return "re-evaluates the loss inside its step (a closure)"
    except CnnbenchError:  # an unknown optimizer: said where it is named
        return None
    if cls not in FUSED_RULES:
        names = sorted({c.__name__ for c in FUSED_RULES})
        return (f"has no capturable update (cnnbench's fused updates cover "
                f"{', '.join(names)})")
    if entry.options.get("maximize") or entry.options.get("differentiable"):
        return "asks for maximize/differentiable, which the fused updates do not cover"
    return None
