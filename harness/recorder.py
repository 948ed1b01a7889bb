"""HDR latency recording that stays cheap on the hot path.

`hdrh`'s `record_value` costs about a microsecond per call in Python, too much
for a generator sending thousands of ops per second. The hot path therefore
only appends integers to an `array('q')` (tens of nanoseconds); once per
interval the buffer is folded into an HDR histogram with numpy, computing
bucket indices for the whole batch at once and adding them straight into the
histogram's counts array. The result is bit-identical to calling
`record_value` for every sample (a unit test checks it).
"""

from __future__ import annotations

from array import array
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


def record_batch(hist: HdrHistogram, values: np.ndarray) -> int:
    """Add integer µs samples to `hist` in one vectorised step; returns how many were clipped.

    Values above the histogram's range are recorded at its highest trackable value,
    negatives at zero, so no sample is ever dropped from the count.
    """
    n = int(values.size)
    if n == 0:
        return 0
    v = values.astype(np.int64, copy=False)
    clipped = int(np.count_nonzero((v > HIGHEST_US) | (v < 0)))
    if clipped:
        v = np.clip(v, 0, HIGHEST_US)
    # bucket index: position of the highest set bit of (v | sub_bucket_mask), as in HdrHistogram's C code
    masked = v | hist.sub_bucket_mask
    _, exp = np.frexp(masked.astype(np.float64))  # exact: values < 2**53
    bucket = exp.astype(np.int64) - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket = v >> (bucket + hist.unit_magnitude)
    index = ((bucket + 1) << hist.sub_bucket_half_count_magnitude) + (sub_bucket - hist.sub_bucket_half_count)
    counts = np.ctypeslib.as_array(hist.counts)
    binned = np.bincount(index, minlength=0)
    counts[: binned.size] += binned.astype(np.uint64)
    hist.total_count += n
    lo, hi = int(v.min()), int(v.max())
    hist.min_value = min(hist.min_value, lo)
    hist.max_value = max(hist.max_value, hi)
    return clipped


class LatencyBuffer:
    """Append-only µs samples between two flushes. `add` is the hot path."""

    __slots__ = ("_buf", "add")

    def __init__(self) -> None:
        self._buf = array("q")
        self.add = self._buf.append

    def __len__(self) -> int:
        return len(self._buf)

    def drain_into(self, hist: HdrHistogram) -> int:
        """Fold the buffered samples into `hist` and empty the buffer; returns clipped count."""
        if not self._buf:
            return 0
        clipped = record_batch(hist, np.frombuffer(self._buf, dtype=np.int64))
        del self._buf[:]
        return clipped


@lru_cache(maxsize=4)
def _highest_equivalent(counts_len: int, half_mag: int, half_count: int, unit_mag: int) -> np.ndarray:
    idx = np.arange(counts_len, dtype=np.int64)
    bucket = (idx >> half_mag) - 1
    sub = (idx & (half_count - 1)) + half_count
    low = bucket < 0
    sub = np.where(low, sub - half_count, sub)
    bucket = np.where(low, 0, bucket)
    return (sub << (bucket + unit_mag)) + (np.int64(1) << (bucket + unit_mag)) - 1


def values_at(hist: HdrHistogram, percentiles: tuple[float, ...]) -> list[int]:
    """`get_value_at_percentile` for several percentiles in one vectorised pass (same values).

    hdrh walks the counts array in Python for every call (milliseconds per call); the collector
    asks for percentiles of every kind every second, on the event loop."""
    counts = np.ctypeslib.as_array(hist.counts)
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


def encode(hist: HdrHistogram) -> str:
    """Compressed, base64 form (HdrHistogram's V2 wire format) for pipes and logs."""
    return hist.encode().decode("ascii")


def decode(encoded: str) -> HdrHistogram:
    return HdrHistogram.decode(encoded.encode("ascii"))


def merge_encoded(target: HdrHistogram, encoded: str) -> None:
    """Add an encoded histogram into `target` exactly (counts add bucket by bucket)."""
    target.decode_and_add(encoded.encode("ascii"))


def stats(hist: HdrHistogram) -> dict[str, float | int]:
    """The percentile block used in summary.json (µs)."""
    count = hist.get_total_count()
    if count == 0:
        return {"count": 0}
    values = hist.get_percentile_to_value_dict(list(PERCENTILES))
    out: dict[str, float | int] = {
        "count": count,
        "min": hist.get_min_value(),
        "mean": round(hist.get_mean_value(), 1),
    }
    for key, p in zip(PERCENTILE_KEYS, PERCENTILES, strict=True):
        out[key] = values[p]
    out["max"] = hist.get_max_value()
    return out

