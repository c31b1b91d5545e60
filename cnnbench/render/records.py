"""One way for every listing (`list`, `plan`, `status`) to be written: a rich table for people,
or CSV / JSON of the same rows, with raw values, for other tools."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV, the columns in first-seen order (a missing cell is empty)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_rows(rows: Sequence[dict[str, Any]], console: Console, fmt: str,
               table: Callable[[], Table], document: Any = None) -> None:
    """`table()` on the console, or the rows as CSV, or `document` (default: the rows) as JSON."""
    if fmt == "table":
        console.print(table())
    elif fmt == "csv":
        console.file.write(to_csv(rows))
    else:
        console.file.write(json.dumps(rows if document is None else document, indent=2,
                                      ensure_ascii=False, default=str) + "\n")
