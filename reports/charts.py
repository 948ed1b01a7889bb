"""Charts as inline SVG strings: matplotlib (Agg), text drawn as paths, no fonts or scripts needed.

Every function returns a complete `<svg>` element ready to embed; figures are closed after
rendering so a long report does not pile up memory. Point counts are capped so a long run
stays a light page: latency series arrive already capped (exactly merged intervals), other
series are binned here (mean for rates, max for gauges and peaks).
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter, NullLocator

from reports.hdr import Counts

MAX_POINTS = 1000
SPECTRUM_POINTS = 1200
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_RC = {
    "svg.fonttype": "path",  # glyphs as paths: renders the same everywhere, no font files
    "svg.hashsalt": None,
    "text.parse_math": False,  # names from runs may contain '$'; never interpret them
    "axes.grid": True,
    "grid.alpha": 0.3,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_counter = itertools.count()
_ID_RE = re.compile(r'id="([^"]+)"')


@dataclass(slots=True)
class Line:
    """One plotted series. `agg` says how to bin it when it has too many points."""

    label: str
    x: Sequence[float] | np.ndarray | Sequence[datetime]
    y: Sequence[float] | np.ndarray
    agg: Literal["mean", "max"] = "mean"
    style: str = "-"
    color: str | None = None
    width: float = 1.2
    marker: str | None = None


@dataclass(slots=True)
class Curve:
    """A latency spectrum to draw from a merged histogram."""

    label: str
    counts: Counts
    style: str = "-"
    color: str | None = None


@dataclass(slots=True)
class Goal:
    """An SLO marker on a spectrum: `value_ms` at `percentile`."""

    label: str
    percentile: float
    value_ms: float
    passed: bool | None = None
    extra: dict[str, str] = field(default_factory=dict)


def to_svg(fig: Figure) -> str:
    """Render and close `fig`; return a bare `<svg>` element whose ids cannot clash with others."""
    buf = io.StringIO()
    try:
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    prefix = f"c{next(_counter)}-"
    ids = set(_ID_RE.findall(text))
    if ids:
        pattern = re.compile(r'(id="|href="#|url\(#)(' + "|".join(re.escape(i) for i in ids) + r')(?=["\)])')
        text = pattern.sub(lambda m: m.group(1) + prefix + m.group(2), text)
    return text


def _figure(height: float = 3.0, width: float = 9.0, left: float = 0.9) -> tuple[Figure, plt.Axes]:
    """Fixed margins (inches) instead of a tight bounding box: one draw per chart instead of two."""
    fig, ax = plt.subplots(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.15 / width, bottom=0.6 / height, top=1 - 0.35 / height)
    return fig, ax


def decimate(x: np.ndarray, y: np.ndarray, agg: str, cap: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most `cap` points: consecutive bins of the series reduced by mean (rates) or max (peaks)."""
    n = y.size
    if n <= cap:
        return x, y
    per = math.ceil(n / cap)
    pad = (-n) % per
    yy = np.concatenate([y.astype(np.float64), np.full(pad, np.nan)]).reshape(-1, per)
    xx = x[::per]
    with np.errstate(all="ignore"):
        out = np.nanmax(yy, axis=1) if agg == "max" else np.nanmean(yy, axis=1)
    return xx, out


def _ms_formatter(v: float, _pos: int) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    return f"{v:g} ms"


def spectrum_decades(totals: Sequence[int]) -> int:
    """Decades of the percentile axis: at least to 99.999 %, and one past the sample count."""
    return max(5, math.ceil(math.log10(max(totals))) + 1) if totals else 5


def spectrum_points(counts: Counts, decades: int, n: int = SPECTRUM_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x = 1/(1-p), latency µs) on a log grid from the 0th percentile to the max (x = 10**decades)."""
    x = np.logspace(0, decades, n)
    pct = 100.0 * (1.0 - 1.0 / x)
    pct[-1] = 100.0
    return x, counts.values_at(pct)


def spectrum_svg(curves: Sequence[Curve], goals: Sequence[Goal] = (), title: str = "") -> str:
    """Latency by percentile on HdrHistogram's axis: x = 1/(1-p), log-scaled, up to the max."""
    with plt.rc_context(_RC):
        fig, ax = _figure(3.4)
        totals = [c.counts.total for c in curves if c.counts.total]
        if not totals:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            return to_svg(fig)
        decades = spectrum_decades(totals)
        x_max = 10.0**decades
        for i, c in enumerate(curves):
            if not c.counts.total:
                continue
            x, y = spectrum_points(c.counts, decades)
            ax.plot(x, y / 1000.0, c.style, color=c.color or PALETTE[i % len(PALETTE)], lw=1.4, label=c.label,
                    drawstyle="steps-post", gid=f"series-{i}")
        for g in goals:
            gx = min(1.0 / max(1e-12, 1.0 - g.percentile / 100.0), x_max)
            color = "#2ca02c" if g.passed else ("#d62728" if g.passed is False else "#555555")
            ax.plot([gx], [g.value_ms], marker="D", ms=6, color=color, ls="none", label=g.label, gid="goal")
            ax.axhline(g.value_ms, color=color, lw=0.8, ls=":", alpha=0.7)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [10.0**k for k in range(1, decades)]
        labels = [pct_label(100.0 * (1 - 1 / t)) for t in ticks]
        ax.set_xticks([2.0, *ticks, x_max], ["50%", *labels, "max"])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(1.0, x_max * 1.5)
        ax.yaxis.set_major_formatter(FuncFormatter(_ms_formatter))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency")
        if title:
            ax.set_title(title, loc="left")
        ax.legend(loc="upper left", frameon=False)
        return to_svg(fig)


def pct_label(p: float) -> str:
    text = f"{p:.10f}".rstrip("0").rstrip(".")
    return f"{text}%"


def line_svg(
    lines: Sequence[Line],
    ylabel: str,
    title: str = "",
    log_y: bool = False,
    ms: bool = False,
    xlabel: str = "seconds since start",
    shade_until: float | None = None,
    height: float = 2.8,
) -> str:
    """A time series chart; `shade_until` greys out the warm-up."""
    with plt.rc_context(_RC):
        fig, ax = _figure(height)
        drawn = 0
        for i, ln in enumerate(lines):
            y = np.asarray(ln.y, dtype=np.float64)
            if not y.size:
                continue
            is_dates = bool(len(ln.x)) and isinstance(ln.x[0], datetime)
            x = np.asarray(ln.x, dtype=object if is_dates else np.float64)
            if not is_dates:
                x, y = decimate(x, y, ln.agg)
            ax.plot(x, y, ln.style, color=ln.color or PALETTE[i % len(PALETTE)], lw=ln.width, label=ln.label,
                    marker=ln.marker, ms=4, gid=f"series-{i}")
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if shade_until:
            ax.axvspan(0, shade_until, color="#999999", alpha=0.15, lw=0, label="warm-up")
        if log_y:
            ax.set_yscale("log")
            ax.yaxis.set_minor_formatter(NullFormatter())
        elif drawn:
            ax.margins(y=0.1)  # a flat line at the target rate must not hide under the frame
            ax.set_ylim(bottom=0)
        if ms:
            ax.yaxis.set_major_formatter(FuncFormatter(_ms_formatter))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(title, loc="left")
        if drawn:
            ax.legend(loc="upper left", frameon=False, ncols=min(4, drawn + 1), fontsize=8)
        if any(len(ln.x) and isinstance(ln.x[0], datetime) for ln in lines):
            fig.autofmt_xdate()
        return to_svg(fig)


def ratio_svg(labels: Sequence[str], ratios: Sequence[float], regressions: Sequence[bool], tolerance: float,
              title: str = "") -> str:
    """Current/baseline ratio per metric as bars around 1, with the noise band shaded."""
    with plt.rc_context(_RC):
        n = max(1, len(labels))
        longest = max((len(label) for label in labels), default=10)
        fig, ax = _figure(min(0.28 * n + 1.0, 12.0), left=min(0.3 + 0.07 * longest, 4.5))
        pos = np.arange(len(labels))
        colors = ["#d62728" if r else "#1f77b4" for r in regressions]
        deltas = [(r - 1.0) * 100.0 for r in ratios]
        ax.barh(pos, deltas, color=colors)
        ax.axvspan(-tolerance * 100, tolerance * 100, color="#999999", alpha=0.2, lw=0, label="noise band")
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_yticks(pos, list(labels))
        ax.invert_yaxis()
        ax.set_xlabel("change vs baseline (%)")
        if title:
            ax.set_title(title, loc="left")
        ax.legend(loc="lower right", frameon=False)
        return to_svg(fig)
