"""The HDR tab's chart: percentiles of each second, as self-contained inline SVG.

Drawn on the server from the master's merged interval histograms (exact percentiles per second,
never averages of percentiles), so the page needs no chart library and fetches nothing. A log
latency axis: a stall and the base latency fit on one chart.
"""

from __future__ import annotations

import html
import math
from typing import Any

WIDTH, HEIGHT = 900, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 34
#: (key in a point, label, colour, dash pattern); values in µs
LINES: tuple[tuple[str, str, str, str], ...] = (
    ("p50", "p50", "#1f77b4", ""),
    ("p90", "p90", "#9467bd", ""),
    ("p99", "p99", "#d62728", ""),
    ("p99_9", "p99.9", "#ff7f0e", ""),
    ("max", "max", "#7f7f7f", "2,3"),
    ("service_p99", "p99 from the send (service time)", "#d62728", "7,4"),
    ("locust_p95", "Locust's own p95 (its 10 s window)", "#2ca02c", "1,3"),
)


def _ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks per decade between lo and hi (ms), fewer when the range is wide."""
    steps = (1, 2, 5) if math.log10(hi / lo) <= 3 else (1,)
    out = []
    for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [s * 10.0**e for s in steps if lo <= s * 10.0**e <= hi]
    return out


def _label(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g} ms"


def render(points: list[dict[str, Any]], warmup_s: float = 0.0) -> str:
    """An <svg> of the per-second percentiles in `points` (the coordinator's series)."""
    values = [p[k] / 1000.0 for p in points for k, *_ in LINES if p.get(k)]
    head = (f'<svg id="edabench-chart" data-points="{len(points)}" viewBox="0 0 {WIDTH} {HEIGHT + 24 * 2}" '
            f'width="100%" style="max-width:{WIDTH}px;font:12px sans-serif" role="img" '
            'aria-label="response time percentiles per second">')
    if not values:
        return (f'{head}<text x="{LEFT}" y="{TOP + 20}" fill="currentColor">waiting for the first '
                "measured second</text></svg>")
    lo = 10.0 ** math.floor(math.log10(max(min(values), 0.001)))
    hi = 10.0 ** math.ceil(math.log10(max(values)))
    if hi <= lo:
        hi = lo * 10
    t0 = min(p["t"] for p in points)
    t1 = max(p["t"] for p in points) + 1
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + (t - t0) / max(1, t1 - t0) * pw

    def y(ms: float) -> float:
        return TOP + (math.log10(hi) - math.log10(max(ms, lo))) / math.log10(hi / lo) * ph

    parts = [head]
    if warmup_s > t0:
        parts.append(f'<rect x="{x(t0):.1f}" y="{TOP}" width="{x(min(warmup_s, t1)) - x(t0):.1f}" height="{ph}" '
                     'fill="#888" fill-opacity="0.12"><title>warm-up (not measured)</title></rect>')
    for ms in _ticks(lo, hi):
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" stroke="#888" '
                     f'stroke-opacity="0.3"/><text x="{LEFT - 6}" y="{y(ms) + 4:.1f}" text-anchor="end" '
                     f'fill="currentColor">{html.escape(_label(ms))}</text>')
    step = max(1, math.ceil((t1 - t0) / 10))
    for t in range(int(t0), int(t1) + 1, step):
        parts.append(f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" fill="currentColor">{t}</text>')
    parts.append(f'<text x="{LEFT + pw / 2:.0f}" y="{TOP + ph + 30}" text-anchor="middle" fill="currentColor">'
                 "seconds since the schedule's start</text>")
    parts.append(f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>')
    for key, label, colour, dash in LINES:
        runs: list[list[str]] = [[]]
        for p in points:
            v = p.get(key)
            if v:
                runs[-1].append(f"{x(p['t'] + 0.5):.1f},{y(v / 1000.0):.1f}")
            elif runs[-1]:
                runs.append([])
        drawn = [r for r in runs if r]
        if not drawn:
            continue
        style = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<g data-series="{key}"><title>{html.escape(label)}</title>')
        for r in drawn:
            if len(r) == 1:
                cx, cy = r[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2" fill="{colour}"/>')
            else:
                parts.append(f'<polyline points="{" ".join(r)}" fill="none" stroke="{colour}" '
                             f'stroke-width="1.6"{style}/>')
        parts.append("</g>")
    lx, ly = LEFT, HEIGHT + 6
    for key, label, colour, dash in LINES:
        if not any(p.get(key) for p in points):
            continue
        width = 34 + 7 * len(label)
        if lx + width > WIDTH:
            lx, ly = LEFT, ly + 20
        style = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 24}" y1="{ly + 8}" y2="{ly + 8}" stroke="{colour}" '
                     f'stroke-width="2"{style}/><text x="{lx + 30}" y="{ly + 12}" fill="currentColor">'
                     f"{html.escape(label)}</text>")
        lx += width
    parts.append("</svg>")
    return "".join(parts)
