"""The project's one HDR histogram shape and its bucket arithmetic, in one place.

µs values, 1 µs to 1 h, 3 significant digits (HdrHistogram's defaults for latency). The hot path
never builds `hdrh` objects: it appends integers to an array, and once a second those are folded
with numpy into `Sparse` counts (bucket index -> count), which cross process boundaries as bytes
and are added into long-lived histograms by the collector. The result is bit-identical to calling
`record_value` for every sample (a unit test checks it).

Why not allocate an `HdrHistogram` per interval: each holds ~190 KB of counts and sits in a
reference cycle (histogram <-> encoder), so it is freed only by a full garbage collection; a
generator tuned for load collects rarely, and memory grew with run length.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9, 99.99)
PERCENTILE_KEYS = ("p50", "p90", "p95", "p99", "p99_9", "p99_99")


def new_histogram() -> HdrHistogram:
    """The project's one histogram shape: µs, 1 µs to 1 h, 3 significant digits."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


@lru_cache(maxsize=1)
def _shape() -> tuple[int, int, int, int, int]:
    h = new_histogram()
    return (h.sub_bucket_mask, h.unit_magnitude, h.sub_bucket_half_count_magnitude,
            h.sub_bucket_half_count, h.counts_len)


def counts_len() -> int:
    return _shape()[4]


def bucket_indices(values: np.ndarray) -> np.ndarray:
    """HdrHistogram's counts index of every value (already clipped to the range), vectorised."""
    mask, unit_mag, half_mag, half_count, _ = _shape()
    # position of the highest set bit of (v | sub_bucket_mask), as in HdrHistogram's C code
    _, exp = np.frexp((values | mask).astype(np.float64))  # exact: values < 2**53
    bucket = exp.astype(np.int64) - unit_mag - (half_mag + 1)
    sub_bucket = values >> (bucket + unit_mag)
    return ((bucket + 1) << half_mag) + (sub_bucket - half_count)


def counts_view(hist: HdrHistogram) -> np.ndarray:
    return np.ctypeslib.as_array(hist.counts)


@dataclass(frozen=True, slots=True)
class Sparse:
    """The non-zero buckets of a histogram: what crosses pipes and sockets (bytes, picklable)."""

    index: bytes  # int32 bucket indices, ascending
    count: bytes  # int64 counts
    total: int
    min: int  # raw µs values (not bucket equivalents), as record_value keeps them
    max: int
    clipped: int = 0

    @classmethod
    def of(cls, values: np.ndarray) -> Sparse | None:
        """Fold raw µs samples; values outside the range are clipped, never dropped."""
        if not values.size:
            return None
        v = values.astype(np.int64, copy=False)
        clipped = int(np.count_nonzero((v > HIGHEST_US) | (v < 0)))
        if clipped:
            v = np.clip(v, 0, HIGHEST_US)
        idx = bucket_indices(v)
        if idx.size < 8192:
            uniq, cnt = np.unique(idx, return_counts=True)
        else:
            dense = np.bincount(idx)
            uniq = np.flatnonzero(dense)
            cnt = dense[uniq]
        return cls(uniq.astype(np.int32).tobytes(), cnt.astype(np.int64).tobytes(), int(v.size),
                   int(v.min()), int(v.max()), clipped)

    @classmethod
    def of_histogram(cls, hist: HdrHistogram) -> Sparse | None:
        if not hist.total_count:
            return None
        counts = counts_view(hist)
        idx = np.flatnonzero(counts)
        return cls(idx.astype(np.int32).tobytes(), counts[idx].astype(np.int64).tobytes(),
                   int(hist.total_count), int(hist.min_value), int(hist.max_value))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.index, dtype=np.int32), np.frombuffer(self.count, dtype=np.int64)

    def add_to(self, hist: HdrHistogram) -> None:
        """Add these counts into `hist` exactly (counts add bucket by bucket)."""
        idx, cnt = self.arrays()
        counts = counts_view(hist)
        counts[idx] += cnt.astype(counts.dtype, copy=False)
        hist.total_count += self.total
        hist.min_value = min(hist.min_value, self.min)
        hist.max_value = max(hist.max_value, self.max)

    def histogram(self) -> HdrHistogram:
        hist = new_histogram()
        self.add_to(hist)
        return hist


def merge(parts: list[Sparse | None]) -> Sparse | None:
    """The sum of several sparse histograms (e.g. one interval of several processes)."""
    present = [p for p in parts if p is not None]
    if len(present) <= 1:
        return present[0] if present else None
    idx = np.concatenate([p.arrays()[0] for p in present])
    cnt = np.concatenate([p.arrays()[1] for p in present])
    uniq, inverse = np.unique(idx, return_inverse=True)
    summed = np.zeros(uniq.size, dtype=np.int64)
    np.add.at(summed, inverse, cnt)
    return Sparse(uniq.astype(np.int32).tobytes(), summed.tobytes(), sum(p.total for p in present),
                  min(p.min for p in present), max(p.max for p in present), sum(p.clipped for p in present))


def reset(hist: HdrHistogram) -> None:
    """Empty a histogram in place (hdrh's own reset loops over every bucket in Python)."""
    counts_view(hist)[:] = 0
    hist.total_count = 0
    hist.min_value = sys.maxsize
    hist.max_value = 0
    hist.start_time_stamp_msec = sys.maxsize
    hist.end_time_stamp_msec = 0


def add(into: HdrHistogram, other: HdrHistogram) -> None:
    """`into += other`, exactly, keeping raw min/max (hdrh's add replaces them by bucket edges)."""
    if not other.total_count:
        return
    counts_view(into)[:] += counts_view(other)
    into.total_count += other.total_count
    into.min_value = min(into.min_value, other.min_value)
    into.max_value = max(into.max_value, other.max_value)


@lru_cache(maxsize=4)
def _highest_equivalent(n: int, half_mag: int, half_count: int, unit_mag: int) -> np.ndarray:
    idx = np.arange(n, dtype=np.int64)
    bucket = (idx >> half_mag) - 1
    sub = (idx & (half_count - 1)) + half_count
    low = bucket < 0
    sub = np.where(low, sub - half_count, sub)
    bucket = np.where(low, 0, bucket)
    return (sub << (bucket + unit_mag)) + (np.int64(1) << (bucket + unit_mag)) - 1


def value_table(hist: HdrHistogram) -> np.ndarray:
    """The highest value each counts index stands for (HdrHistogram's highest equivalent value)."""
    return _highest_equivalent(hist.counts_len, hist.sub_bucket_half_count_magnitude,
                               hist.sub_bucket_half_count, hist.unit_magnitude)


def values_at(hist: HdrHistogram, percentiles: tuple[float, ...]) -> list[int]:
    """`get_value_at_percentile` for several percentiles in one vectorised pass (same values).

    hdrh walks the counts array in Python for every call (milliseconds per call)."""
    counts = counts_view(hist)
    nz = np.flatnonzero(counts)
    if not nz.size:
        return [0] * len(percentiles)
    cum = np.cumsum(counts[: nz[-1] + 1].astype(np.int64))
    total = int(hist.total_count)
    table = _highest_equivalent(hist.counts_len, hist.sub_bucket_half_count_magnitude,
                                hist.sub_bucket_half_count, hist.unit_magnitude)
    out = []
    for p in percentiles:
        if p <= 0:  # HdrHistogram answers p0 with the lowest equivalent value
            out.append(int(hist.get_lowest_equivalent_value(hist.get_min_value())))
            continue
        target = max(int(min(p, 100.0) * total / 100 + 0.5), 1)
        i = min(int(np.searchsorted(cum, target, side="left")), cum.size - 1)
        out.append(int(table[i]))
    return out


def stats(hist: HdrHistogram) -> dict[str, float | int]:
    """The percentile block used in summary.json (µs)."""
    count = int(hist.get_total_count())
    if count == 0:
        return {"count": 0}
    values = values_at(hist, PERCENTILES)
    out: dict[str, float | int] = {
        "count": count,
        "min": int(hist.get_min_value()),
        "mean": round(hist.get_mean_value(), 1),
    }
    for key, v in zip(PERCENTILE_KEYS, values, strict=True):
        out[key] = v
    out["max"] = int(hist.get_max_value())
    return out


def encode(hist: HdrHistogram) -> str:
    """Compressed, base64 form (HdrHistogram's V2 wire format)."""
    return hist.encode().decode("ascii")


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode("ascii"))
