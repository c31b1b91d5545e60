"""The look every figure shares: Okabe & Ito's (2008) palette, which stays distinguishable under
the common colour-vision deficiencies (yellow last: faint on white), with markers and, beyond
the palette's eight colours, line styles repeating the distinction. The one palette of every
figure, matplotlib's and the HTML report's (plotly names for the same marker and dash)."""

from __future__ import annotations

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
             "#F0E442")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")


PLOTLY_SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond",
                  "v": "triangle-down", "P": "cross", "X": "x", "*": "star"}
PLOTLY_DASHES = {"-": "solid", "--": "dash", ":": "dot", "-.": "dashdot"}


def series_style(i: int) -> dict[str, str]:
    """Colour, marker and line style of the i-th series of a figure. Past the eight colours the
    marker shifts by one per round and the line style changes, so colour + marker alone already
    tell 64 series apart (a figure that uses line style for something else still works)."""
    colours, rounds = len(OKABE_ITO), i // len(OKABE_ITO)
    return {"color": OKABE_ITO[i % colours], "marker": MARKERS[(i + rounds) % len(MARKERS)],
            "linestyle": LINESTYLES[rounds % len(LINESTYLES)]}


def plotly_style(style: dict[str, str]) -> dict[str, str]:
    """`series_style` in plotly's vocabulary: colour, marker symbol, line dash."""
    return {"color": style["color"], "symbol": PLOTLY_SYMBOLS[style["marker"]],
            "dash": PLOTLY_DASHES[style["linestyle"]]}


def styles_by_name(names: list[str]) -> dict[str, dict[str, str]]:
    """A stable style per name (sorted, so every figure of a report agrees)."""
    return {name: series_style(i) for i, name in enumerate(sorted(names))}
