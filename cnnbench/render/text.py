"""Plain-text building blocks the reports share: a Markdown table (numbers right-aligned, names
left) and a DataFrame as JSON records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd

NAME_COLUMNS = ("model", "optimizer", "dataset", "batch", "curve", "lr grid")


def escape(cell: str) -> str:
    return cell.replace("|", r"\|")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                   left: Sequence[str] = ()) -> str:
    """Numbers right-aligned; names (and the columns in `left`) left-aligned."""
    right = [not h.startswith(NAME_COLUMNS) and h not in left for h in header]
    lines = ["| " + " | ".join(escape(h) for h in header) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-ready records (NaN → null)."""
    return json.loads(frame.to_json(orient="records"))
