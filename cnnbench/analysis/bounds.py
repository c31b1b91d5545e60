"""Where an lr search's best lr is bounded: by an end of its grid at which every run diverged
or failed (the search's expansion stops there), as pure pandas."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd


def divergence_bound(curve: pd.DataFrame, keys: Sequence[str], row: dict[str, Any]
                     ) -> float | None:
    """For a group an lr search ran (`rounds` above 1 in its `best_lr` row): the end of its
    grid next to the best lr at which every run diverged or failed, if there is one. `curve` is
    `lr_curve`'s table."""
    if not row.get("rounds", 1) > 1 or not row.get("ok"):
        return None
    mine = curve.merge(pd.DataFrame([{k: row[k] for k in keys}]), on=list(keys))
    lrs = mine["lr"].tolist()
    i = lrs.index(row["best_lr"])
    for j in (i - 1, i + 1):
        if j in (0, len(lrs) - 1) and j != i and mine["ok"].iloc[j] == 0:
            return float(lrs[j])
    return None
