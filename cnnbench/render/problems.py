"""A report's rows split by problem (model, dataset, …: its group keys but the optimizer), one
panel or section each, for the figures and the HTML page alike."""

from __future__ import annotations

import pandas as pd


def problem_frames(report, frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(title, rows) per problem (model, dataset, …: the groups' keys but optimizer)."""
    keys = report.problem_keys
    if not keys:
        return [("all runs", frame)]
    return [(" / ".join(str(v) for v in (key if isinstance(key, tuple) else (key,))), part)
            for key, part in frame.groupby(keys, sort=True)]
