"""Charts as inline SVG strings: matplotlib (Agg), text drawn as paths, no fonts or scripts needed.

Each chart has a `*_figure` builder (tests read its geometry: legends outside the data, labels
inside the canvas, enough ticks) and a `*_svg` wrapper that renders and closes it. Layout is in
inches, not a tight bounding box, so one draw per chart; the legend is measured once and gets a
band of its own above the plot, however many entries it has. Point counts are capped so a long
run stays a light page: latency series arrive already capped (exactly merged intervals), other
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

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from reports.hdr import Counts, log_edges

MAX_POINTS = 1000
SPECTRUM_POINTS = 1200
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#bcbd22", "#7f7f7f")
OTHER_COLOR = "#9a9a9a"
WIDTH = 9.0  # inches; 864 px at 96 dpi, inside the page's 1,100 px column
LEFT, RIGHT, BOTTOM = 0.9, 0.2, 0.55  # margins (in): y tick labels + label, breathing room, x ticks + label
LEGEND_PT = 8.0
WSPACE = 0.12  # gap between small multiples, as a share of a panel's width
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
    """A latency spectrum (or distribution) to draw from a merged histogram."""

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


@dataclass(slots=True)
class Panel:
    """One small multiple: a title (an op kind) and its lines, drawn on axes shared with its siblings."""

    title: str
    lines: list[Line]


def to_svg(fig: Figure) -> str:
    """Render and close `fig`; return a bare `<svg>` element whose ids cannot clash with others."""
    buf = io.StringIO()
    try:
        with plt.rc_context(_RC):
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    finally:
        plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<!--.*?-->\n?", "", text, flags=re.S)
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, flags=re.S)  # RDF boilerplate naming URLs
    prefix = f"c{next(_counter)}-"
    ids = set(_ID_RE.findall(text))
    if ids:
        pattern = re.compile(r'(id="|href="#|url\(#)(' + "|".join(re.escape(i) for i in ids) + r')(?=["\)])')
        text = pattern.sub(lambda m: m.group(1) + prefix + m.group(2), text)
    return text


# -- layout --------------------------------------------------------------------------------------


def _text_width_in(fig: Figure, text: str, size: float) -> float:
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    w, _, _ = renderer.get_text_width_height_descent(text, FontProperties(size=size), ismath=False)
    return w / fig.dpi


def fit_text(fig: Figure, text: str, width_in: float, size: float) -> str:
    """`text`, cut with an ellipsis in the middle where it is wider than `width_in`: a long op name
    must not run into the next panel's title."""
    if _text_width_in(fig, text, size) <= width_in:
        return text
    keep = len(text)
    while keep > 2:
        keep -= 1
        cut = text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2 :]
        if _text_width_in(fig, cut, size) <= width_in:
            return cut
    return text[:1] + "…"


def _legend_columns(fig: Figure, labels: Sequence[str], avail_in: float) -> int:
    """As many columns as the widest entry allows in the plot's width (handle, gap and spacing in em)."""
    em = LEGEND_PT / 72.0
    widest = max(_text_width_in(fig, label, LEGEND_PT) for label in labels)
    col = widest + (2.0 + 0.8 + 2.0) * em
    return max(1, min(len(labels), int((avail_in + 2.0 * em) // col)))


def _arrange(fig: Figure, axes_h: float, title: str = "", legend: tuple[list[Artist], list[str]] | None = None,
             left: float = LEFT, bottom: float = BOTTOM, hspace_in: float = 0.0, rows: int = 1,
             legend_gap: float = 0.12) -> None:
    """Size `fig` so the axes block is `axes_h` inches tall, with the title and legend in bands above it.

    The legend never overlaps a plot: it is measured after it is built, and the figure grows by
    its height. `hspace_in` is the gap between rows of small multiples.
    """
    width = fig.get_figwidth()
    avail = width - left - RIGHT
    top = 0.15
    title_h = 0.3 if title else 0.0
    leg = None
    if legend and legend[1]:
        handles, labels = legend
        ncols = _legend_columns(fig, labels, avail)
        leg = fig.legend(handles, labels, loc="lower left", ncols=ncols, frameon=False, fontsize=LEGEND_PT,
                         borderaxespad=0.0, borderpad=0.0, handlelength=2.0)
        renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
        leg_h = leg.get_window_extent(renderer).height / fig.dpi
        top += leg_h + legend_gap
    height = top + title_h + axes_h + bottom
    fig.set_size_inches(width, height)
    bottom_f, top_f = bottom / height, 1 - (top + title_h) / height
    fig.subplots_adjust(left=left / width, right=1 - RIGHT / width, bottom=bottom_f, top=top_f)
    if rows > 1:  # matplotlib's hspace is a fraction of a panel's height
        fig.subplots_adjust(hspace=hspace_in / ((axes_h - hspace_in * (rows - 1)) / rows))
    if leg is not None:
        leg.set_bbox_to_anchor((left / width, top_f + legend_gap / height), transform=fig.transFigure)
    if title:
        fig.text(left / width, 1 - 0.1 / height, title, ha="left", va="top", fontsize=10)


def _legend_entries(axes: Sequence[Axes]) -> tuple[list[Artist], list[str]]:
    """Handles and labels of all axes, each label once (small multiples repeat them)."""
    seen: dict[str, Artist] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label and not label.startswith("_"):
                seen.setdefault(label, h)
    return list(seen.values()), list(seen)


def _new(axes_h: float = 2.2) -> tuple[Figure, Axes]:
    fig = plt.figure(figsize=(WIDTH, axes_h + 1.0))
    return fig, fig.add_subplot()


# -- axes ----------------------------------------------------------------------------------------

_LOG_STEPS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
              (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))


def log_ticks(lo: float, hi: float, least: int = 3, most: int = 8) -> list[float]:
    """Round tick values inside [lo, hi] for a log axis: at least `least` of them, whatever the span.

    Decades first (1, 10, 100); a narrower span gets 1-3, then 1-2-5 ... per decade; a span
    narrower than the finest of those gets evenly spaced round values.
    """
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for steps in _LOG_STEPS:
        ticks = [v for e in range(e0, e1 + 1) for m in steps
                 if lo * (1 - 1e-9) <= (v := float(f"{m:g}e{e}")) <= hi * (1 + 1e-9)]
        if len(ticks) >= least:
            return ticks[:: math.ceil(len(ticks) / most)]
    linear = MaxNLocator(nbins=least + 1, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return [float(v) for v in linear if lo <= v <= hi]


def _label_log_axis(axis: matplotlib.axis.Axis, formatter: FuncFormatter | None = None) -> None:
    """Every log axis gets several labelled ticks (matplotlib labels decades only)."""
    lo, hi = axis.get_view_interval()
    ticks = log_ticks(min(lo, hi), max(lo, hi))
    if ticks:
        axis.set_major_locator(FixedLocator(ticks))
    if formatter is not None:
        axis.set_major_formatter(formatter)
    axis.set_minor_locator(NullLocator())  # labelled ticks say enough; unlabelled ones cost a third of a draw
    axis.set_minor_formatter(NullFormatter())


def _ms_formatter(v: float, _pos: int | None = None) -> str:
    if v >= 1000:
        return f"{v / 1000:g} s"
    if 0 < v < 1:
        return f"{v * 1000:g} µs"
    return f"{v:g} ms"


MS = FuncFormatter(_ms_formatter)


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


def has_signal(lines: Sequence[Line]) -> bool:
    """Whether any series holds a non-zero value: an all-zero chart is replaced by a sentence."""
    return any(np.any(np.nan_to_num(np.asarray(ln.y, dtype=np.float64)) != 0) for ln in lines)


# -- spectrum ------------------------------------------------------------------------------------


def spectrum_decades(totals: Sequence[int]) -> int:
    """Decades of the percentile axis: at least to 99.999 %, and one past the sample count."""
    return max(5, math.ceil(math.log10(max(totals))) + 1) if totals else 5


def spectrum_points(counts: Counts, decades: int, n: int = SPECTRUM_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(x = 1/(1-p), latency µs) on a log grid from the 0th percentile to the max (x = 10**decades)."""
    x = np.logspace(0, decades, n)
    pct = 100.0 * (1.0 - 1.0 / x)
    pct[-1] = 100.0
    return x, counts.values_at(pct)


def spectrum_figure(curves: Sequence[Curve], goals: Sequence[Goal] = (), title: str = "") -> Figure:
    """Latency by percentile on HdrHistogram's axis: x = 1/(1-p), log-scaled, up to the max."""
    with plt.rc_context(_RC):
        fig, ax = _new(2.6)
        totals = [c.counts.total for c in curves if c.counts.total]
        if not totals:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            _arrange(fig, 2.6, title)
            return fig
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
        _label_log_axis(ax.yaxis, MS)
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency")
        _arrange(fig, 2.6, title, _legend_entries([ax]))
        return fig


def spectrum_svg(curves: Sequence[Curve], goals: Sequence[Goal] = (), title: str = "") -> str:
    return to_svg(spectrum_figure(curves, goals, title))


def pct_label(p: float) -> str:
    text = f"{p:.10f}".rstrip("0").rstrip(".")
    return f"{text}%"


# -- distribution --------------------------------------------------------------------------------


def distribution_figure(curves: Sequence[Curve], title: str = "") -> Figure:
    """Response-time distribution: samples per log-spaced latency bucket (as Gatling and k6 chart it).

    The first curve is drawn as filled bars, the others as outlines over the same buckets;
    its p50 and p99 are marked. Log-spaced buckets keep both the body and a stall's tail visible,
    and are fine enough to resolve the first curve's body (p25 to p75).
    """
    with plt.rc_context(_RC):
        fig, ax = _new(2.2)
        drawn = [c for c in curves if c.counts.total]
        if not drawn:
            ax.text(0.5, 0.5, "no samples", ha="center", va="center", transform=ax.transAxes)
            _arrange(fig, 2.2, title)
            return fig
        lo = min(c.counts.min_value() for c in drawn)
        hi = max(c.counts.max_value() for c in drawn)
        p25, p75 = (float(v) for v in drawn[0].counts.values_at([25.0, 75.0]))
        edges = log_edges(lo, hi, (p25, p75))
        edges_ms = edges / 1000.0
        for i, c in enumerate(drawn):
            binned = c.counts.binned(edges)
            color = c.color or PALETTE[i % len(PALETTE)]
            if i == 0:
                ax.stairs(binned, edges_ms, fill=True, color=color, alpha=0.75, label=c.label, gid=f"series-{i}")
            else:
                ax.stairs(binned, edges_ms, color=color, lw=1.2, ls="--" if c.style == "--" else "-",
                          label=c.label, gid=f"series-{i}")
        first = drawn[0].counts
        for p, ls in ((50.0, "--"), (99.0, ":")):
            v = float(first.values_at([p])[0]) / 1000.0
            ax.axvline(v, color="#333333", lw=0.9, ls=ls, label=f"p{p:g} {_ms_formatter(float(f'{v:.3g}'))}")
        ax.set_xscale("log")
        ax.set_xlim(edges_ms[0], edges_ms[-1])
        _label_log_axis(ax.xaxis, MS)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:,.0f}"))
        ax.set_xlabel("latency (log-spaced buckets)")
        ax.set_ylabel("samples")
        _arrange(fig, 2.2, title, _legend_entries([ax]))
        return fig


def distribution_svg(curves: Sequence[Curve], title: str = "") -> str:
    return to_svg(distribution_figure(curves, title))


# -- time series ---------------------------------------------------------------------------------


def _plot_lines(ax: Axes, lines: Sequence[Line], start: int = 0) -> int:
    drawn = 0
    for i, ln in enumerate(lines, start):
        y = np.asarray(ln.y, dtype=np.float64)
        if not y.size:
            continue
        is_dates = bool(len(ln.x)) and isinstance(ln.x[0], datetime)
        x = np.asarray(ln.x, dtype=object if is_dates else np.float64)
        if not is_dates:
            x, y = decimate(x, y, ln.agg)
        ax.plot(x, y, ln.style, color=ln.color or PALETTE[(i - start) % len(PALETTE)], lw=ln.width,
                label=ln.label, marker=ln.marker, ms=4, gid=f"series-{i}")
        drawn += 1
    return drawn


def line_figure(
    lines: Sequence[Line],
    ylabel: str,
    title: str = "",
    log_y: bool = False,
    ms: bool = False,
    xlabel: str = "seconds since start",
    shade_until: float | None = None,
    height: float = 2.0,
) -> Figure:
    """A time series chart; `shade_until` greys out the warm-up (x = seconds of the schedule)."""
    with plt.rc_context(_RC):
        fig, ax = _new(height)
        drawn = _plot_lines(ax, lines)
        if not drawn:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        if shade_until:
            ax.axvspan(0, shade_until, color="#999999", alpha=0.15, lw=0, label="warm-up")
        if log_y:
            ax.set_yscale("log")
            _label_log_axis(ax.yaxis, MS if ms else None)
        else:
            if drawn:
                ax.margins(y=0.1)  # a flat line at the target rate must not hide under the frame
                ax.set_ylim(bottom=0)
            if ms:
                ax.yaxis.set_major_formatter(MS)
        dates = any(len(ln.x) and isinstance(ln.x[0], datetime) for ln in lines)
        if dates:  # short, horizontal labels: rotated ones would push the axis label off the canvas
            locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        _arrange(fig, height, title, _legend_entries([ax]) if drawn else None, bottom=0.75 if dates else BOTTOM)
        return fig


def line_svg(lines: Sequence[Line], ylabel: str, title: str = "", log_y: bool = False, ms: bool = False,
             xlabel: str = "seconds since start", shade_until: float | None = None, height: float = 2.0) -> str:
    return to_svg(line_figure(lines, ylabel, title, log_y, ms, xlabel, shade_until, height))


def small_multiples_figure(panels: Sequence[Panel], ylabel: str, ncols: int = 3, shade_until: float | None = None,
                           panel_h: float = 1.3, xlabel: str = "seconds since start") -> Figure:
    """One small chart per panel on shared, log-scaled latency axes: the same colours in every panel,
    so many op kinds stay readable where one chart of all their lines would be a tangle."""
    with plt.rc_context(_RC):
        n = max(1, len(panels))
        ncols = min(ncols, n)
        rows = math.ceil(n / ncols)
        gap = 0.55  # panel title above, x tick labels below
        fig = plt.figure(figsize=(WIDTH, rows * panel_h + 1.0))
        grid = fig.subplots(rows, ncols, sharex=True, sharey=True, squeeze=False)
        axes = [ax for row in grid for ax in row]
        used = axes[: len(panels)]
        for ax in axes[len(panels) :]:
            ax.remove()
        series = 0
        panel_w = (WIDTH - LEFT - RIGHT) / (ncols + WSPACE * (ncols - 1))  # matplotlib's wspace: of a panel
        for ax, panel in zip(used, panels, strict=False):
            series += _plot_lines(ax, panel.lines, series)
            if shade_until:
                ax.axvspan(0, shade_until, color="#999999", alpha=0.15, lw=0, label="warm-up")
            ax.set_title(fit_text(fig, panel.title, panel_w, 9.0), loc="left", fontsize=9, pad=3)
            ax.tick_params(labelbottom=True, labelsize=8)
        if series:
            used[0].set_yscale("log")
            for ax in used:
                _label_log_axis(ax.yaxis, MS)
        for i, ax in enumerate(used):
            if i % ncols == 0:
                ax.set_ylabel(ylabel)
            if i >= len(used) - ncols:
                ax.set_xlabel(xlabel)
        fig.subplots_adjust(wspace=WSPACE)
        _arrange(fig, rows * panel_h + (rows - 1) * gap, "", _legend_entries(used), hspace_in=gap, rows=rows,
                 legend_gap=0.3)
        return fig


def small_multiples_svg(panels: Sequence[Panel], ylabel: str, ncols: int = 3, shade_until: float | None = None,
                        panel_h: float = 1.3) -> str:
    return to_svg(small_multiples_figure(panels, ylabel, ncols, shade_until, panel_h))


# -- comparison ----------------------------------------------------------------------------------


def ratio_figure(labels: Sequence[str], ratios: Sequence[float], regressions: Sequence[bool], tolerance: float,
                 title: str = "") -> Figure:
    """Current/baseline ratio per metric as bars around 1, with the noise band shaded."""
    with plt.rc_context(_RC):
        n = max(1, len(labels))
        axes_h = min(0.24 * n + 0.3, 11.0)
        fig, ax = _new(axes_h)
        size = float(plt.rcParams["font.size"])  # tick labels are "medium": the base size
        widest = max((_text_width_in(fig, label, size) for label in labels), default=1.0)
        left = min(widest + 0.35, 4.5)  # the metric names, measured, plus the tick marks
        pos = np.arange(len(labels))
        colors = ["#d62728" if r else "#1f77b4" for r in regressions]
        deltas = [(r - 1.0) * 100.0 for r in ratios]
        for i, bar in enumerate(ax.barh(pos, deltas, color=colors)):
            bar.set_gid(f"series-{i}")
        ax.axvspan(-tolerance * 100, tolerance * 100, color="#999999", alpha=0.2, lw=0, label="noise band")
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_yticks(pos, list(labels))
        ax.set_ylim(len(labels) - 0.5, -0.5)  # first metric on top, no empty rows
        ax.set_xlabel("change vs baseline (%)")
        _arrange(fig, axes_h, title, _legend_entries([ax]), left=left)
        return fig


def ratio_svg(labels: Sequence[str], ratios: Sequence[float], regressions: Sequence[bool], tolerance: float,
              title: str = "") -> str:
    return to_svg(ratio_figure(labels, ratios, regressions, tolerance, title))
