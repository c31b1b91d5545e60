"""The look every figure shares: Okabe & Ito's (2008) palette, which stays distinguishable under
the common colour-vision deficiencies (yellow last: faint on white), with markers and, beyond
the palette's eight colours, line styles repeating the distinction."""

from __future__ import annotations

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
             "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")


def series_style(i: int) -> dict[str, str]:
    """Colour, marker and line style of the i-th series of a figure."""
    return {"color": OKABE_ITO[i % len(OKABE_ITO)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": LINESTYLES[(i // len(OKABE_ITO)) % len(LINESTYLES)]}


def styles_by_name(names: list[str]) -> dict[str, dict[str, str]]:
    """A stable style per name (sorted, so every figure of a report agrees)."""
    return {name: series_style(i) for i, name in enumerate(sorted(names))}
