"""Read HdrHistogram interval logs into exact per-interval percentiles and a merged histogram.

hdrh's own percentile lookups walk the counts array in Python, which is too slow for
hundreds of intervals per op kind. Decoding stays in hdrh (its C codec); everything after
that is numpy over the counts array, using the same bucket arithmetic as HdrHistogram so
the numbers match `summary.json` exactly. Percentiles over time come from each interval's
own histogram (or from exactly merged neighbouring intervals when points are capped),
never from averaging percentiles.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

_START_RE = re.compile(r"#\[StartTime:\s*([\d.]+)")
_BASE_RE = re.compile(r"#\[BaseTime:\s*([\d.]+)")


@dataclass(frozen=True, slots=True)
class Layout:
    """Bucket geometry of one histogram shape (lowest, highest, significant digits)."""

    unit_magnitude: int
    sub_bucket_half_count_magnitude: int
    sub_bucket_half_count: int
    counts_len: int

    def lowest_values(self, n: int) -> np.ndarray:
        """Lowest value of each of the first `n` buckets (HdrHistogram's value_from_index)."""
        idx = np.arange(n, dtype=np.int64)
        bucket = (idx >> self.sub_bucket_half_count_magnitude) - 1
        sub = (idx & (self.sub_bucket_half_count - 1)) + self.sub_bucket_half_count
        low = bucket < 0
        sub = np.where(low, sub - self.sub_bucket_half_count, sub)
        bucket = np.where(low, 0, bucket)
        return sub << (bucket + self.unit_magnitude)

    def highest_values(self, n: int) -> np.ndarray:
        """Highest equivalent value of each bucket: what HdrHistogram reports for a percentile."""
        idx = np.arange(n, dtype=np.int64)
        bucket = np.maximum((idx >> self.sub_bucket_half_count_magnitude) - 1, 0)
        return self.lowest_values(n) + (np.int64(1) << (bucket + self.unit_magnitude)) - 1


@lru_cache(maxsize=8)
def layout_for(lowest: int, highest: int, digits: int) -> Layout:
    h = HdrHistogram(lowest, highest, digits)
    return Layout(h.unit_magnitude, h.sub_bucket_half_count_magnitude, h.sub_bucket_half_count, h.counts_len)


@lru_cache(maxsize=8)
def _value_tables(layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    return layout.lowest_values(layout.counts_len), layout.highest_values(layout.counts_len)


@dataclass(slots=True)
class Counts:
    """A histogram as a numpy counts array; adds exactly, answers percentiles like HdrHistogram."""

    layout: Layout
    counts: np.ndarray

    @classmethod
    def empty(cls, layout: Layout) -> Counts:
        return cls(layout, np.zeros(layout.counts_len, dtype=np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, other: Counts) -> None:
        self.counts += other.counts

    def values_at(self, percentiles: np.ndarray | list[float]) -> np.ndarray:
        """Values (µs) at percentiles in [0, 100], vectorised HdrHistogram.get_value_at_percentile."""
        pct = np.asarray(percentiles, dtype=np.float64)
        nz = np.flatnonzero(self.counts)
        if not nz.size:
            return np.zeros(pct.shape, dtype=np.int64)
        return _values_at(np.cumsum(self.counts[: nz[-1] + 1]), pct, self.layout)

    def max_value(self) -> int:
        nz = np.flatnonzero(self.counts)
        return int(_value_tables(self.layout)[1][nz[-1]]) if nz.size else 0

    def min_value(self) -> int:
        """Lowest recorded value (µs), as HdrHistogram reports it: the lowest value of the first bucket."""
        nz = np.flatnonzero(self.counts)
        return int(_value_tables(self.layout)[0][nz[0]]) if nz.size else 0

    def binned(self, edges: np.ndarray) -> np.ndarray:
        """Samples per bin of `edges` (µs, ascending; a bin holds [edge, next edge)), exactly.

        Each HDR bucket falls in the bin of its lowest value; buckets are at most 0.1 % wide at
        3 significant digits, so a sample lands in a neighbouring bin only within that of an edge.
        """
        nz = np.flatnonzero(self.counts)
        out = np.zeros(max(0, len(edges) - 1), dtype=np.int64)
        if not nz.size or not out.size:
            return out
        bins = np.searchsorted(edges, _value_tables(self.layout)[0][nz], side="right") - 1
        keep = (bins >= 0) & (bins < out.size)
        np.add.at(out, bins[keep], self.counts[nz][keep])
        return out

    def mean(self) -> float:
        total = self.total
        if not total:
            return 0.0
        low, high = _value_tables(self.layout)
        mid = (low + high) // 2  # HdrHistogram's median equivalent value
        return float((self.counts * mid).sum() / total)

    def cumulative(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, fraction of samples at or below) for every non-empty bucket: the spectrum's steps."""
        nz = np.flatnonzero(self.counts)
        if not nz.size:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        cum = np.cumsum(self.counts[nz])
        return _value_tables(self.layout)[1][nz], cum / cum[-1]


PER_DECADE = (5, 10, 20, 50, 100, 200)


def log_edges(lo_us: float, hi_us: float, body_us: tuple[float, float] | None = None,
              target_bins: int = 40) -> np.ndarray:
    """Log-spaced bucket edges (µs) covering [lo, hi], aligned on powers of 10 so round latencies
    (1 ms, 10 ms) fall on edges.

    About `target_bins` buckets over the range, but finer when the body (`body_us`, e.g. p25 and
    p75) is narrow, so that six buckets cross it (up to 200 a decade, 1.2 % wide, still ten times
    HDR's resolution): a tight 20 ms body next to a 1 s stall must not collapse into one bar.
    """
    lo, hi = max(1.0, float(lo_us)), max(1.0, float(hi_us))
    span = max(math.log10(hi) - math.log10(lo), 0.5)
    per = min(PER_DECADE[:4], key=lambda k: abs(k * span - target_bins))
    if body_us is not None and body_us[0] > 0:
        body = math.log10(max(body_us[1], body_us[0] * 1.001) / body_us[0])
        per = max(per, next((k for k in PER_DECADE if k * body >= 6), PER_DECADE[-1]))
    first = math.floor(math.log10(lo) * per + 1e-9)
    last = math.floor(math.log10(hi) * per + 1e-9) + 1  # hi itself lies inside the last bin
    return 10.0 ** (np.arange(first, last + 1) / per)


@dataclass(slots=True)
class IntervalSeries:
    """Percentiles per (possibly merged) interval, in seconds from the log's start time."""

    t_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    count: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    p50: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    p99: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    max: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.t_s.size)


@dataclass(slots=True)
class HlogData:
    """One interval log: the per-interval series and the merged histogram of the kept intervals."""

    series: IntervalSeries
    merged: Counts | None
    start_time_s: float | None  # epoch seconds from the log header, when present
    intervals: int


def parse_lines(text: str) -> tuple[float | None, list[tuple[float, float, str]]]:
    """Split a log into (StartTime, [(offset s, length s, payload)]) without decoding anything."""
    start: float | None = None
    base: float | None = None
    raw: list[tuple[float, float, str]] = []
    for line in text.splitlines():
        if not line:
            continue
        if line[0] == "#":
            if m := _START_RE.match(line):
                start = float(m.group(1))
            elif m := _BASE_RE.match(line):
                base = float(m.group(1))
            continue
        if line.startswith("Tag="):
            line = line[line.find(",") + 1 :]
        parts = line.split(",", 3)
        if len(parts) != 4 or parts[0].startswith('"'):
            continue  # legend line
        try:
            ts, length = float(parts[0]), float(parts[1])
        except ValueError:
            continue
        raw.append((ts, length, parts[3].strip()))
    if not raw:
        return start, []
    first = raw[0][0]
    # HdrHistogram convention: timestamps more than a year below StartTime are relative to BaseTime
    year = 365 * 24 * 3600.0
    if base is None:
        base = start if (start is not None and first < start - year) else 0.0
    if start is not None:
        origin = start
    else:  # no header: small timestamps are already seconds since start, epoch ones are not
        origin = 0.0 if first + base < year else first + base
    return start, [(ts + base - origin, length, payload) for ts, length, payload in raw]


def _values_at(cum: np.ndarray, percentiles: np.ndarray, layout: Layout) -> np.ndarray:
    """HdrHistogram.get_value_at_percentile over a cumulative-count prefix, vectorised."""
    total = int(cum[-1])
    target = np.maximum((np.minimum(percentiles, 100.0) * total / 100.0 + 0.5).astype(np.int64), 1)
    idx = np.minimum(np.searchsorted(cum, target, side="left"), cum.size - 1)
    lowest, highest = _value_tables(layout)
    return np.where(percentiles == 0, lowest[idx], highest[idx])  # HdrHistogram: p0 is the lowest value


_P50_P99 = np.array([50.0, 99.0])


def read_hlog(path: Path, skip_before_s: float = 0.0, max_points: int = 1000) -> HlogData:
    """Decode an interval log.

    Intervals that end by `skip_before_s` (warm-up) are charted but left out of the merged
    histogram, as `summary.json` leaves warm-up out of the statistics. An interval straddling
    the end of warm-up is kept: the harness records no warm-up samples at all, so whatever it
    holds was measured. When there are more than
    `max_points` intervals, neighbours are merged exactly into at most `max_points` points.
    Only the non-empty prefix of each counts array is touched (values rarely reach the top).
    """
    start, entries = parse_lines(path.read_text(encoding="ascii", errors="replace"))
    n = len(entries)
    if n == 0:
        return HlogData(IntervalSeries(), None, start, 0)
    per = max(1, math.ceil(n / max_points))
    points = math.ceil(n / per)
    t_s = np.zeros(points)
    count = np.zeros(points, dtype=np.int64)
    p50 = np.zeros(points, dtype=np.int64)
    p99 = np.zeros(points, dtype=np.int64)
    mx = np.zeros(points, dtype=np.int64)
    layout: Layout | None = None
    merged = bin_counts = np.zeros(0, dtype=np.int64)
    bin_top = bin_total = bin_max = 0
    for i, (offset, length, payload) in enumerate(entries):
        h = HdrHistogram.decode(payload.encode("ascii"))
        if layout is None:
            layout = layout_for(h.lowest_trackable_value, h.highest_trackable_value, h.significant_figures)
            merged = np.zeros(layout.counts_len, dtype=np.int64)
            bin_counts = np.zeros(layout.counts_len, dtype=np.int64)
        k = i // per
        if i % per == 0:
            t_s[k] = offset
        total = int(h.total_count)
        if total:
            top = h.get_counts_array_index(h.max_value) + 1
            arr = np.frombuffer(h.counts, dtype=np.int64, count=top)
            if offset + length > skip_before_s + 1e-9:
                merged[:top] += arr
            bin_counts[:top] += arr
            bin_top, bin_total, bin_max = max(bin_top, top), bin_total + total, max(bin_max, int(h.max_value))
        if (i % per == per - 1 or i == n - 1) and bin_total:
            count[k] = bin_total
            p50[k], p99[k] = _values_at(np.cumsum(bin_counts[:bin_top]), _P50_P99, layout)
            mx[k] = bin_max
            bin_counts[:bin_top] = 0
            bin_top = bin_total = bin_max = 0
    merged_counts = Counts(layout, merged) if layout is not None else None
    return HlogData(IntervalSeries(t_s, count, p50, p99, mx), merged_counts, start, n)
