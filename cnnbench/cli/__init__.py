"""The `cnnbench` command line: the Typer app (`app`), shared options (`options`), and one module
per command group — suites (run, plan, validate, schema, status, submit), results (report,
compare, grad-norms), export, and tools (list, profile, trajectories)."""

from cnnbench.cli import export, results, suites, tools  # noqa: F401  (importing registers them)
from cnnbench.cli.app import app, main

__all__ = ["app", "main"]
