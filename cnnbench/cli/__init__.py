"""The `cnnbench` command line: the Typer app, shared options, one module per command group."""

from cnnbench.cli.app import app, main

__all__ = ["app", "main"]
