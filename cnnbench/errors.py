"""The one exception family users see. The CLI turns any of these into a message and exit code 2."""

from __future__ import annotations


class CnnbenchError(Exception):
    """A problem the user can fix (bad input, missing data, absent device)."""


class SuiteError(CnnbenchError):
    """A suite file, or an override of it, is invalid."""


class UnknownNameError(CnnbenchError):
    """A model, optimizer, dataset or schedule name that no registry knows."""
