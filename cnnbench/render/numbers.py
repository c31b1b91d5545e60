"""Numbers as text, one way everywhere: metrics, seconds, bytes (binary units), FLOPs and other
counts (SI prefixes); a missing value is a dash."""

from __future__ import annotations

import math
from typing import Any

DASH = "—"
SI_PREFIXES = (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3))


def missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_metric(value: float, metric: str) -> str:
    """An accuracy in percent (the column header says %), a loss as is."""
    if missing(value):
        return DASH
    if metric.endswith("acc"):
        return f"{100 * value:.2f}"
    return f"{value:.4f}" if math.isfinite(value) else "∞"


def metric_scale(metric: str) -> float:
    """What a metric's values are multiplied by to be shown: accuracies in percent."""
    return 100.0 if metric.endswith("acc") else 1.0


def metric_header(metric: str) -> str:
    return f"{metric} %" if metric.endswith("acc") else metric


def fmt_seconds(value: float) -> str:
    if missing(value):
        return DASH
    return f"{value:.3g}" if value < 1000 else f"{value:,.0f}"


def fmt_bytes(value: float) -> str:
    """Binary units: B, KiB, MiB, GiB, TiB."""
    if missing(value):
        return DASH
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def fmt_si(value: float | None, unit: str = "") -> str:
    """Three significant digits with an SI prefix: 39.3 GFLOP, 1.2 kFLOP/s."""
    if missing(value):
        return DASH
    for prefix, size in SI_PREFIXES:
        if abs(value) >= size:
            return f"{value / size:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def fmt_flops(value: float | None) -> str:
    return fmt_si(value, "FLOP")
