"""Number formatting shared by the HTML and Markdown outputs, so both print the same figures."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def ms(us: Any) -> str:
    """µs integer -> human latency with 3 significant digits."""
    if us is None or (isinstance(us, float) and math.isnan(us)):
        return "–"
    v = float(us)
    if v >= 1_000_000:
        return f"{v / 1_000_000:.3g} s"
    if v >= 1000:
        return f"{v / 1000:.3g} ms"
    return f"{v:.3g} µs"


def num(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.{digits}g}"
    return str(v)


def with_unit(v: Any, unit: str, signed: bool = False) -> str:
    """A goal, measurement or margin in its unit ("ms", "ratio", "ops/s" ...)."""
    if v is None:
        return "–"
    if unit == "ratio" and isinstance(v, int | float):
        text = f"{v * 100:+.3g} %" if signed else f"{v * 100:.3g} %"
        return text
    if isinstance(v, int | float):
        text = f"{v:+.4g}" if signed else num(v)
        return f"{text} {unit}".strip()
    return f"{v} {unit}".strip()


def margin(v: Any) -> str:
    """The gate's margin: share of the goal still free (negative: missed by that share)."""
    if v is None or not isinstance(v, int | float) or not math.isfinite(v):
        return "–"
    pct = v * 100
    return f"{pct:+,.0f} %" if abs(pct) >= 100 else f"{pct:+.3g} %"


def pct_change(ratio: float | None) -> str:
    if ratio is None or not math.isfinite(ratio):
        return "–"
    return f"{(ratio - 1) * 100:+.1f} %"


def when(v: Any) -> str:
    """An ISO-8601 UTC time as `2026-11-23 18:15:00`: short enough for a table column."""
    if not isinstance(v, str) or not v:
        return "–"
    try:
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return v
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def rate(v: Any) -> str:
    return "–" if v is None else f"{float(v):,.1f}/s"
