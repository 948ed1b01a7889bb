"""What every rate profile is: a deterministic arrival schedule, split exactly between processes.

A profile knows its rate over time and, for deterministic shapes, where its j-th arrival falls
(`offsets_ns`). The global schedule is then the arrivals 0..count-1 in order; generator process
i of N takes arrivals i, i+N, i+2N, ..., so the processes together follow the profile exactly
and an op's id (its global index) is unique across them. Arrivals are produced in chunks, so a
run of any length holds only the next few thousand in memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np

CHUNK = 4096


class Profile(ABC):
    """An arrival-rate profile over a run of `total_s` seconds (warm-up included)."""

    def __init__(self, total_s: float) -> None:
        self.total_s = float(total_s)

    @abstractmethod
    def rate_at(self, t: float) -> float:
        """Target rate (ops/s, all processes) at `t` seconds into the run."""

    def rate_at_many(self, t: np.ndarray) -> np.ndarray:
        return np.fromiter((self.rate_at(float(x)) for x in t), dtype=np.float64, count=t.size)

    @abstractmethod
    def count(self) -> int:
        """How many arrivals the whole run has, all processes together."""

    @abstractmethod
    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        """Offsets (s from the run's start) of the global arrivals numbered `index`."""

    def peak_rate(self) -> float:
        return max(self.rate_at(0.0), self.rate_at(self.total_s))

    def arrivals(self, process: int = 0, processes: int = 1, chunk: int = CHUNK
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, offsets in ns) of this process's arrivals, in order, `chunk` at a time."""
        total = self.count()
        step = chunk * processes
        for first in range(process, total, step):
            ids = np.arange(first, min(total, first + step), processes, dtype=np.int64)
            yield ids, (self.offsets_s(ids) * 1e9).astype(np.int64)
