"""What "best" means, as pure pandas: best learning rate per (model, optimizer) by mean
validation metric over seeds; failed or diverged runs count as the worst value, never dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd

LOWER_IS_BETTER = {"val_loss", "test_loss", "train_loss", "best_val_loss"}


def scored(runs: pd.DataFrame, metric: str = "val_acc") -> pd.Series:
    """The metric, with runs that did not finish ok set to the worst possible value."""
    worst = np.inf if metric in LOWER_IS_BETTER else -np.inf
    values = pd.to_numeric(runs[metric], errors="coerce") if metric in runs else pd.Series(
        np.nan, index=runs.index)
    return values.where(runs["status"].eq("ok") & values.notna(), worst)


def best_lr(runs: pd.DataFrame, metric: str = "val_acc",
            by: tuple[str, ...] = ("model", "optimizer")) -> pd.DataFrame:
    """One row per group: its best lr, the metric there, the test accuracy there (mean ± std over
    seeds), seconds per epoch, status counts, and whether the best lr is on the grid's edge."""
    if runs.empty:
        return pd.DataFrame()
    runs = runs.assign(_score=scored(runs, metric))
    ascending = metric in LOWER_IS_BETTER
    rows = []
    for key, group in runs.groupby(list(by), sort=True):
        per_lr = group.groupby("lr")["_score"].mean().sort_index()
        best = per_lr.sort_values(ascending=ascending, kind="stable").index[0]
        at_best = group[group["lr"] == best]
        ok = at_best[at_best["status"] == "ok"]
        rows.append({
            **dict(zip(by, key if isinstance(key, tuple) else (key,))),
            "best_lr": best,
            metric: ok[metric].mean() if len(ok) else np.nan,
            "test_acc_mean": ok["test_acc"].mean() if len(ok) else np.nan,
            "test_acc_std": ok["test_acc"].std(ddof=1) if len(ok) > 1 else np.nan,
            "seeds": len(at_best),
            "s_per_epoch": ok["s_per_epoch"].mean() if len(ok) else np.nan,
            "runs": len(group),
            "ok": int((group["status"] == "ok").sum()),
            "diverged": int((group["status"] == "diverged").sum()),
            "failed": int((~group["status"].isin(["ok", "diverged"])).sum()),
            "grid_points": len(per_lr),
            "on_edge": len(per_lr) > 1 and best in (per_lr.index[0], per_lr.index[-1]),
        })
    return pd.DataFrame(rows)
