"""The one exception family users see. The CLI turns any of these into a message and exit code 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class CnnbenchError(Exception):
    """A problem the user can fix (bad input, missing data, absent device)."""


class SuiteError(CnnbenchError):
    """A suite file, or an override of it, is invalid."""


class UnknownNameError(CnnbenchError):
    """A model, optimizer, dataset or schedule name that no registry knows."""


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 1) -> str:
    """' — did you mean 'x'?' for the closest of `choices` (up to n, joined by 'or'), or ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=n, cutoff=0.6)
    return f" — did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
