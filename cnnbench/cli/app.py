"""The `cnnbench` Typer app and its entry point. The commands live in `suites`, `results` and
`tools` (each parses, calls one `cnnbench.api` function, renders).

User errors (`CnnbenchError`) are turned into one message on stderr and exit code 2, here, in
`CnnbenchGroup.invoke` — nowhere else.
"""

from __future__ import annotations

import sys
import warnings
from typing import Annotated

import typer
from rich.markup import escape
from typer.core import TyperGroup

from cnnbench.cli.options import err_console, require_choices
from cnnbench.errors import CnnbenchError

EXIT_USER_ERROR = 2
EXIT_RUN_FAILED = 1


# the order of `cnnbench --help`: the suite workflow first, then results, then the side tools
COMMAND_ORDER = ("run", "plan", "validate", "schema", "submit", "status", "report", "compare",
                 "grad-norms", "export", "compact", "upgrade", "list", "init", "profile",
                 "lr-find", "trajectories")


class CnnbenchGroup(TyperGroup):
    """Turns every `CnnbenchError` raised by a command into one message and exit code 2."""

    def list_commands(self, ctx) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: COMMAND_ORDER.index(n) if n in COMMAND_ORDER
                      else len(COMMAND_ORDER))

    def invoke(self, ctx):
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except CnnbenchError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(EXIT_USER_ERROR) from None


def _show_warning(message, category, *args, **kwargs) -> None:
    """Warnings meant for users (damaged result files, …) as one line on stderr."""
    err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False,
                      soft_wrap=True)


class CnnbenchTyper(typer.Typer):
    """A Typer whose commands check their choice options (`options.require_choices`)."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda command: register(require_choices(command))


app = CnnbenchTyper(cls=CnnbenchGroup, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False, add_completion=False,
                  help="Benchmark image classifiers and their optimizers from YAML suites.")


def _print_version(value: bool) -> None:
    if value:
        from cnnbench.version import __version__

        typer.echo(f"cnnbench {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="print cnnbench's version and exit")] = False) -> None:
    """Benchmark image classifiers and their optimizers from YAML suites."""


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
