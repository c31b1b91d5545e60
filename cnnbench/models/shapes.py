"""Input shapes as users write them: `3x32x32` or `3×32×32` (channels × height × width)."""

from __future__ import annotations

import re

from cnnbench.errors import CnnbenchError

Shape = tuple[int, int, int]
SHAPE_PATTERN = re.compile(r"(\d+)\s*[×xX]\s*(\d+)\s*[×xX]\s*(\d+)")


def parse_input(text: str, option: str = "--input") -> Shape:
    """'3x32x32' (or '3×32×32') → (3, 32, 32); the models take square inputs only."""
    match = SHAPE_PATTERN.fullmatch(text.strip())
    if not match:
        raise CnnbenchError(f"{option} {text!r}: write it as CxHxW (CHANNELSxHEIGHTxWIDTH), "
                            "e.g. 3x32x32")
    channels, height, width = map(int, match.groups())
    if min(channels, height, width) < 1:
        raise CnnbenchError(f"{option} {text!r}: every size must be at least 1, e.g. 3x32x32")
    if height != width:
        raise CnnbenchError(f"{option} {text!r}: the models take square inputs (H = W); give "
                            "HEIGHT = WIDTH, e.g. 3x32x32")
    return channels, height, width
