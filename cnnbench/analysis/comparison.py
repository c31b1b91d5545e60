"""Two result sets side by side: their common runs matched and, per configuration, whether the
time, the memory or a metric changed beyond the seed noise (asv's rule for times, Welch's test
for metrics). Pure pandas, like the protocol it sits beside."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from cnnbench.analysis.protocol import peak_bytes
from cnnbench.analysis.significance import ALPHA, FACTOR, change, significant_diff


def beyond_noise(a: Sequence[float], b: Sequence[float], *, alpha: float = ALPHA
                 ) -> bool | None:
    """Whether mean(b) differs from mean(a) by Welch's t-test (scipy, with its degrees of
    freedom) at `alpha`; None when either side has fewer than 2 values, so the seed noise is
    unknown."""
    return significant_diff(a, b, alpha=alpha)[0]


MATCH_KEYS = ("model", "model_kwargs", "optimizer", "lr", "batch", "dataset")


def compare(runs_a: pd.DataFrame, runs_b: pd.DataFrame, *, metric: str = "test_acc",
            factor: float = FACTOR, alpha: float = ALPHA) -> pd.DataFrame:
    """Two result sets on their common runs, one row per (model, optimizer, lr, …) over seeds:
    time and memory ratios (B / A), the metric's difference (B − A), and whether each changed.
    A time changed only when beyond `factor` *and* significant (asv's rule, Welch on log
    seconds); the metric when significant (Welch); `*_why` says which held. Runs match on
    run_id, else on model/optimizer/lr/seed (+batch, dataset)."""
    keys = [k for k in MATCH_KEYS if k in runs_a and k in runs_b]
    runs_a = runs_a.assign(peak_bytes=peak_bytes(runs_a))
    runs_b = runs_b.assign(peak_bytes=peak_bytes(runs_b))
    pairs = runs_a.merge(runs_b, on="run_id", suffixes=("_a", "_b"))
    rest_a = runs_a[~runs_a["run_id"].isin(pairs["run_id"])]
    rest_b = runs_b[~runs_b["run_id"].isin(pairs["run_id"])]
    by_config = rest_a.merge(rest_b, on=[*keys, "seed"], suffixes=("_a", "_b"))
    for k in (*keys, "seed"):
        pairs[k] = pairs[f"{k}_a"]
    pairs = pd.concat([pairs, by_config], ignore_index=True)
    if pairs.empty:
        return pd.DataFrame(columns=[*keys, "seeds"])
    rows = []
    for key, group in pairs.groupby(keys, sort=True, dropna=False):
        row = dict(zip(keys, key, strict=True))
        sa, sb = group["s_per_epoch_a"].astype(float), group["s_per_epoch_b"].astype(float)
        ma, mb = group[f"{metric}_a"].astype(float), group[f"{metric}_b"].astype(float)
        ok = group["status_a"].eq("ok") & group["status_b"].eq("ok")
        time_flag, time_why = change(sa[ok], sb[ok], factor=factor, alpha=alpha)
        metric_flag, metric_why = significant_diff(ma[ok], mb[ok], alpha=alpha)
        row.update({
            "seeds": len(group), "both_ok": int(ok.sum()),
            "s_per_epoch_a": sa.mean(), "s_per_epoch_b": sb.mean(),
            "time_ratio": sb.mean() / sa.mean(),
            "time_flag": time_flag, "time_why": time_why,
            "peak_bytes_a": group["peak_bytes_a"].mean(),
            "peak_bytes_b": group["peak_bytes_b"].mean(),
            "memory_ratio": group["peak_bytes_b"].mean() / group["peak_bytes_a"].mean(),
            f"{metric}_a": ma[ok].mean(), f"{metric}_b": mb[ok].mean(),
            f"{metric}_diff": mb[ok].mean() - ma[ok].mean(),
            f"{metric}_flag": metric_flag, f"{metric}_why": metric_why,
        })
        rows.append(row)
    return pd.DataFrame(rows)
