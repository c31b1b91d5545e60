"""Rich tables laid out once: where a table fits the console at its cells' full widths, each
column is given that width, so rich does not measure every cell again (a third of the time of
the report's 1,000-line tables at 50,000 runs). The output is the same: these are the widths
rich's layout would pick (tests/test_fitting.py compares both at several widths)."""

from __future__ import annotations

from rich.cells import cell_len
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text


def fitted(table: Table, console: Console) -> Table:
    """`table`, its columns as wide as their widest cell or header where that fits the
    console; unchanged where it does not (rich then wraps and shrinks columns), or where a
    column is not plain text."""
    if not all(_plain(column) for column in table.columns):
        return table
    widths = [max([cell_len(column.header), *(cell_len(line) for cell in column.cells
                                              for line in cell.plain.splitlines())])
              for column in table.columns]
    # the padding and borders as rich's own layout counts them
    padding = sum(table._get_padding_width(i) for i in range(len(widths)))
    if sum(widths) + padding + table._extra_width > console.width:
        return table
    for column, width in zip(table.columns, widths, strict=True):
        column.width = width
    return table


def _plain(column: Column) -> bool:
    """Whether rich would measure the column by its text: a header without markup or emoji
    codes, Text cells, and no width of its own."""
    header = column.header
    return (isinstance(header, str) and not {"[", ":"} & set(header) and column.width is None
            and all(isinstance(cell, Text) for cell in column.cells))
