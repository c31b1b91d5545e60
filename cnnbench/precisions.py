"""The precisions a run or a profile can use (train/precision.py maps them to dtypes). Apart from
the suite schema so that the command line can offer them without importing pydantic."""

from __future__ import annotations

import typing
from typing import Literal

Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
