"""Gradient norms against depth, from the `grad_norms` probe: how much gradient reaches each
layer's weights, at initialisation and as training goes on (the vanishing-gradient picture)."""

from __future__ import annotations

import pandas as pd

from cnnbench.analysis import AXES
from cnnbench.errors import CnnbenchError


def run_labels(runs: pd.DataFrame) -> pd.Series:
    """A short name per run_id: the model, plus every other axis that varies among the runs of
    one model."""
    varying = [a for a in ("optimizer", "lr", "seed", *AXES) if a in runs and
               (runs.groupby("model")[a].agg(lambda v: v.astype(str).nunique()) > 1).any()]
    labels = runs["model"].astype(str)
    for axis in varying:
        labels = labels + f" {axis}=" + runs[axis].astype(str)
    return pd.Series(labels.values, index=runs["run_id"].values)


def depth_profile(grad_norms: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run, epoch and weight tensor (rank ≥ 2: kernels and matrices; biases and norm
    scales left out), numbered by `depth` from 1 at the input, with the run's `label`."""
    if grad_norms.empty:
        raise CnnbenchError("no gradient norms in these results: add grad_norms to the suite's "
                            "probes (probes: [time, memory, flops, grad_norms]) and run it")
    weights = grad_norms[grad_norms["ndim"] >= 2].copy()
    weights["depth"] = weights.groupby(["run_id", "epoch"]).cumcount() + 1
    weights["label"] = weights["run_id"].map(run_labels(runs)).fillna(weights["run_id"])
    return weights.reset_index(drop=True)


def depth_summary(profile: pd.DataFrame) -> pd.DataFrame:
    """Per run and epoch: the first and last weight tensors' gradient norms, their ratio, and
    the smallest and median norm over all weight tensors."""
    rows = []
    for (label, epoch), group in profile.groupby(["label", "epoch"], sort=True):
        norms = group.sort_values("depth")["grad_norm"]
        first, last = norms.iloc[0], norms.iloc[-1]
        rows.append({"run": label, "epoch": epoch, "step": int(group["step"].iloc[0]),
                     "weight_layers": len(norms), "first": first, "last": last,
                     "first_over_last": first / last if last else float("nan"),
                     "min": norms.min(), "median": norms.median()})
    return pd.DataFrame(rows)
