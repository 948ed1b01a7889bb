"""Latency recording that stays cheap on the hot path and constant in memory.

`add` only appends an integer to an `array('q')` (tens of nanoseconds; `hdrh`'s `record_value`
costs about a microsecond). `fold` moves the buffered samples into a dense count array with numpy,
a few thousand at a time, so no fold ever stalls the scheduler for long; `take` hands the
interval's counts over as `Sparse` and starts the next interval from zero. Memory is one counts
array per recorder, whatever the run's length.
"""

from __future__ import annotations

from array import array

import numpy as np

from harness.results.hdr import HIGHEST_US, Sparse, bucket_indices, counts_len


class Recorder:
    """One metric of one op kind in one process, interval by interval."""

    __slots__ = ("_buf", "_clipped", "_dense", "_max", "_min", "_total", "add", "clipped")

    def __init__(self) -> None:
        self._buf = array("q")
        self.add = self._buf.append  # the hot path: µs values
        self._dense: np.ndarray | None = None
        self._total = 0
        self._min = 1 << 62
        self._max = 0
        self._clipped = 0  # this interval's
        self.clipped = 0  # all intervals'

    def extend(self, values: np.ndarray) -> None:
        """Add many µs values at once (an int64 array)."""
        self._buf.frombytes(values.astype(np.int64, copy=False).tobytes())

    def __len__(self) -> int:
        return len(self._buf) + self._total

    def fold(self) -> None:
        """Move the buffered samples into the interval's counts."""
        if not self._buf:
            return
        v = np.frombuffer(self._buf, dtype=np.int64)
        bad = int(np.count_nonzero((v > HIGHEST_US) | (v < 0)))
        if bad:
            v = np.clip(v, 0, HIGHEST_US)
            self.clipped += bad
            self._clipped += bad
        if self._dense is None:
            self._dense = np.zeros(counts_len(), dtype=np.int64)
        self._dense += np.bincount(bucket_indices(v), minlength=self._dense.size)
        self._total += int(v.size)
        self._min = min(self._min, int(v.min()))
        self._max = max(self._max, int(v.max()))
        del v
        del self._buf[:]

    def take(self) -> Sparse | None:
        """This interval's samples as sparse counts; the recorder starts the next interval empty."""
        self.fold()
        if not self._total or self._dense is None:
            return None
        idx = np.flatnonzero(self._dense)
        out = Sparse(idx.astype(np.int32).tobytes(), self._dense[idx].tobytes(), self._total,
                     self._min, self._max, self._clipped)
        self._dense[idx] = 0
        self._total, self._min, self._max, self._clipped = 0, 1 << 62, 0, 0
        return out
