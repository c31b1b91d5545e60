"""The words a suite and the command line share: precisions (train/precision.py maps them to
dtypes) and executions (execute/grouping.py). Apart from the suite schema so that the command
line can offer them without importing pydantic."""

from __future__ import annotations

import typing
from typing import Literal

Precision = Literal["fp32", "bf16", "fp16", "fp64"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)

# how a suite's runs train: one by one, or as vectorized ensembles
Execution = Literal["sequential", "ensemble", "auto"]
EXECUTIONS: tuple[str, ...] = typing.get_args(Execution)
