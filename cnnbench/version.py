"""cnnbench's version: the installed distribution's, so pyproject.toml is the one place it is
written (a source tree on sys.path, not installed, says 0+unknown)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cnnbench")
except PackageNotFoundError:
    __version__ = "0+unknown"
