"""What the commands share: the two consoles, the options several commands take, the choice
options as enums (with one message for a bad choice), and the one comma-list parser."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from cnnbench.choices import PRECISIONS
from cnnbench.errors import CnnbenchError


def _width(stream) -> int | None:
    """None (the terminal's width) on a terminal; in a pipe, a log or a Slurm `.out`, wide
    enough that no table cell is ever cut (rich would otherwise assume 80 columns)."""
    return None if stream.isatty() else 100_000


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, soft_wrap=True, width=_width(sys.stderr))

T = TypeVar("T")


class Choice(str, enum.Enum):
    """A choice option's values. `str()` is the value: typer before 0.29 converts what the option's
    click type returns with `str(value)`, and `'Precision.bf16'` made every choice arrive as None
    there (typer issue #223) — `--execution ensemble` then silently trained sequentially."""

    def __str__(self) -> str:
        return str(self.value)


C = TypeVar("C", bound=Choice)


class Format(Choice):
    """How a report or listing is written: a rich table, text for other tools, or (report only)
    one self-contained HTML page."""

    table = "table"
    markdown = "markdown"
    csv = "csv"
    json = "json"
    html = "html"


class ListFormat(Choice):
    """How a listing (list, plan, status) is written: a rich table, or its rows for other
    tools."""

    table = "table"
    csv = "csv"
    json = "json"


Precision = Choice("Precision", {p: p for p in PRECISIONS})


class At(Choice):
    """Which evaluation of a run counts: its last, or its best validation epoch."""

    final = "final"
    best = "best"


class Listing(Choice):
    suites = "suites"
    models = "models"
    optimizers = "optimizers"
    datasets = "datasets"


def choice(kind: type[C], noun: str) -> Callable[[str], C]:
    """A parser for a choice option: a bad value gets 'unknown NOUN …; choose one of: …' (exit
    2). typer's `click_type` is gone in 0.29 and `parser` is in every release the range allows;
    `Choice.__str__` is what keeps the parsed member intact on the older ones."""
    def parse(value: str | C) -> C:
        try:
            return kind(value)
        except ValueError:
            valid = ", ".join(str(member) for member in kind)
            raise typer.BadParameter(f"unknown {noun} {str(value)!r}; choose one of: {valid}"
                                     ) from None
    return parse


def choice_option(kind: type[Choice], noun: str, *names: str, help: str):
    return typer.Option(*names, parser=choice(kind, noun), metavar=_metavar(kind), help=help)


def choice_argument(kind: type[Choice], noun: str):
    return typer.Argument(parser=choice(kind, noun), metavar=_metavar(kind))


def _metavar(kind: type[Choice]) -> str:
    return "|".join(str(member) for member in kind)


def parse_list(text: str | None, convert: Callable[[str], T], option: str,
               expected: str) -> list[T] | None:
    """'a,b,c' → [convert(a), …]; blanks dropped; None stays None. A value `convert` rejects is
    a CnnbenchError naming the option and what was `expected` ("integers, e.g. 0,4")."""
    if text is None:
        return None
    try:
        return [convert(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CnnbenchError(f"{option} {text!r}: give {expected}") from None


SuiteArg = Annotated[Path, typer.Argument(
    help="suite YAML file, or a packaged suite's name (cnnbench list suites)")]
ResultsArg = Annotated[Path, typer.Argument(help="a results folder")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="override a suite key, e.g. --set train.epochs=1 (repeatable)")]
DeviceOpt = Annotated[str | None, typer.Option(
    help="auto | cpu | cuda | cuda:N (overrides the suite)")]
OutOpt = Annotated[Path | None, typer.Option(help="results folder (default results/<suite name>)")]
DataDirOpt = Annotated[str | None, typer.Option(help="where datasets live")]
FormatOpt = Annotated[Format, choice_option(Format, "format", "--format",
                                            help="table | markdown | csv | json (report: html)")]
ListFormatOpt = Annotated[ListFormat, choice_option(ListFormat, "format", "--format",
                                                    help="table | csv | json")]
PlotsOpt = Annotated[Path | None, typer.Option(
    help="also write the figures (PNG and SVG) into this folder")]


def print_written(paths) -> None:
    """One 'wrote PATH' line on stderr per file written."""
    for path in paths:
        err_console.print(f"wrote {path}", highlight=False)
