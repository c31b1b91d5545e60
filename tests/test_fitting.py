"""`render.fitting.fitted` gives rich tables the widths rich's own layout would pick: the same
output with and without it, at widths where a table fits and where rich must wrap."""

from __future__ import annotations

import io

import pytest
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

import tests.helpers.results as rf
from cnnbench.render import confidence, fitting, report
from cnnbench.render.fitting import fitted


def _table(header: str = "name") -> Table:
    table = Table(title="a title longer than some of the widths tried here", box=box.SIMPLE_HEAD,
                  title_justify="left")
    table.add_column(header)  # may wrap
    for column in ("lr", "val_acc %", "95% CI"):
        table.add_column(column, justify="right", no_wrap=True)
    for i in range(5):
        table.add_row(Text(f"model {i} with a long name"), Text(f"{10 ** -i:.3g}"),
                      Text(f"{90 + i:.2f}", style="bold green" if i == 2 else ""), Text(""))
    return table


def _printed(table: Table, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=True,
                      color_system="truecolor")
    console.print(table)
    return console.file.getvalue()


@pytest.mark.parametrize("width", [20, 40, 57, 58, 59, 80])
def test_a_table_prints_the_same_fitted_or_not(width):
    table = _table()
    assert _printed(fitted(table, Console(width=width)), width) == _printed(_table(), width)
    fits = width >= 58  # 24 + 6 + 9 + 6 characters, 8 of padding, 5 of borders
    assert [c.width for c in table.columns] == ([24, 6, 9, 6] if fits else [None] * 4)


def test_a_header_with_markup_or_a_cell_of_another_kind_is_left_to_rich():
    assert all(c.width is None for c in fitted(_table("[b]name[/]"), Console()).columns)
    table = _table()
    table.add_row("a str cell", "1", "2", "3")
    assert all(c.width is None for c in fitted(table, Console()).columns)


@pytest.mark.parametrize("width", [60, 120, 200])
def test_the_report_prints_the_same_fitted_or_not(monkeypatch, width):
    rows = [rf.run(model=model, optimizer=opt, lr=lr, seed=seed,
                   val_acc=0.5 + 0.1 * lr_i + 0.01 * seed + (0.05 if opt == "adam" else 0))
            for model in ("mlp", "lenet5") for opt in ("adam", "sgd", "momentum")
            for lr_i, lr in enumerate((0.001, 0.01, 0.1)) for seed in range(3)]
    built = report.Report(rf.runs(*rows))

    def printed() -> str:
        console = Console(file=io.StringIO(), width=width)
        report.print_report(built, console)
        return console.file.getvalue()

    fitted_once = printed()
    monkeypatch.setattr(report, "fitted", lambda table, console: table)
    monkeypatch.setattr(confidence, "fitted", lambda table, console: table)
    assert fitted_once == printed()
    assert fitting.fitted is fitted  # the modules above use this one
