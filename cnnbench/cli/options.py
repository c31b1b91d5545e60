"""What the commands share: the two consoles, the options several commands take, the choice
options as enums (with one message for a bad choice), and the one comma-list parser."""

from __future__ import annotations

import enum
import functools
import inspect
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.models
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
    """A choice option's values; `str()` of a member is its value (in messages and f-strings)."""

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


# ─── Choice options: one conversion, on every typer the range allows ──────────────────────────
# A choice parameter is annotated `str`, never with its Enum: typer before 0.29 ran its own enum
# conversion on whatever a `parser=` returned, looked the member up by `str(member)` and, missing,
# passed None on (typer issue #223; `--execution ensemble` silently trained sequentially on a GPU
# machine with typer 0.27.2). Typer converts no `str` after a parser, in any release; the parser
# below is the one conversion, and what the command receives is the Enum member (a `str`).


def choice(kind: type[C], noun: str) -> Callable[[str], C]:
    """The parser of a choice option: the member, or for a bad value 'unknown NOUN …; choose one
    of: …' (exit 2)."""
    def parse(value: str | C) -> C:
        try:
            return kind(value)
        except ValueError:
            valid = ", ".join(str(member) for member in kind)
            raise typer.BadParameter(f"unknown {noun} {str(value)!r}; choose one of: {valid}"
                                     ) from None
    parse.kind, parse.noun = kind, noun  # what `require_choices` recognises it by
    return parse


def choice_option(kind: type[Choice], noun: str, *names: str, help: str):
    """A choice option, for a parameter annotated `str` (or `str | None` when it may be left
    out)."""
    return typer.Option(*names, parser=choice(kind, noun), metavar=_metavar(kind), help=help)


def choice_argument(kind: type[Choice], noun: str):
    return typer.Argument(parser=choice(kind, noun), metavar=_metavar(kind))


def _metavar(kind: type[Choice]) -> str:
    return "|".join(str(member) for member in kind)


@dataclass(frozen=True)
class ChoiceParameter:
    """A command's choice parameter: its Enum, how the command line names it (`--format`, or
    the argument's noun in capitals), and its default (empty: a required argument)."""

    kind: type[Choice]
    label: str
    default: Any

    @property
    def required(self) -> bool:
        return self.default is not None


def choice_parameters(command: Callable) -> dict[str, ChoiceParameter]:
    """The choice parameters of a command function, by parameter name."""
    hints = typing.get_type_hints(command, include_extras=True)
    found = {}
    for name, parameter in inspect.signature(command).parameters.items():
        for info in getattr(hints.get(name), "__metadata__", ()):
            parse = getattr(info, "parser", None)
            if not hasattr(parse, "kind"):
                continue
            if isinstance(info, typer.models.ArgumentInfo):
                label = parse.noun.upper()
            else:  # in Annotated, typer takes a str `default` as the first declaration
                decls = [info.default] if isinstance(info.default, str) else []
                decls += list(info.param_decls or ())
                label = decls[0] if decls else f"--{name.replace('_', '-')}"
            found[name] = ChoiceParameter(parse.kind, label, parameter.default)
    return found


def require_choices(command: Callable) -> Callable:
    """`command`, refusing to run when a choice it requires (one with a default, or a required
    argument) arrives as anything but one of its members: None there is an error naming the
    option (exit 2), never a silent default."""
    choices = choice_parameters(command)
    if not choices:
        return command

    @functools.wraps(command)
    def checked(*args, **kwargs):
        for name, choice in choices.items():
            value = kwargs.get(name)
            if not isinstance(value, choice.kind) and (choice.required or value is not None):
                valid = ", ".join(str(member) for member in choice.kind)
                raise CnnbenchError(f"{choice.label} arrived as {value!r}, not as one of its "
                                    f"choices ({valid}): the command line parser lost it (a "
                                    "typer this cnnbench does not support?)")
        return command(*args, **kwargs)

    return checked


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
FormatOpt = Annotated[str, choice_option(Format, "format", "--format",
                                         help="table | markdown | csv | json (report: html)")]
ListFormatOpt = Annotated[str, choice_option(ListFormat, "format", "--format",
                                             help="table | csv | json")]
PlotsOpt = Annotated[Path | None, typer.Option(
    help="also write the figures (PNG and SVG) into this folder")]


def print_written(paths) -> None:
    """One 'wrote PATH' line on stderr per file written."""
    for path in paths:
        err_console.print(f"wrote {path}", highlight=False)
