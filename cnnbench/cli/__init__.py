"""The `cnnbench` command line: the Typer app (`app`), shared options (`options`), and one module
per command group — suites (run, plan, validate, schema, status, submit), results (report,
compare, grad-norms) and tools (list, profile, trajectories)."""

from cnnbench.cli import results, suites, tools  # noqa: F401  (importing registers the commands)
from cnnbench.cli.app import app, main

__all__ = ["app", "main"]
