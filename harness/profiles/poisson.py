"""`poisson = true`: exponential gaps around any profile's rate, by thinning (Lewis-Shedler).

Each process draws its own Poisson stream at 1/N of the rate (a superposition of Poisson
processes is a Poisson process of the summed rate); op ids are seq * N + process, unique across
processes. Gaps are drawn a chunk at a time, so memory does not grow with the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from harness.profiles.base import CHUNK, Profile


class Poisson(Profile):
    def __init__(self, shape: Profile, seed: int) -> None:
        super().__init__(shape.total_s)
        self.shape = shape
        self.seed = seed

    def rate_at(self, t: float) -> float:
        return self.shape.rate_at(t)

    def peak_rate(self) -> float:
        return self.shape.peak_rate()

    def count(self) -> int:
        """The expected count (a Poisson stream's actual count varies)."""
        return self.shape.count()

    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        raise TypeError("a Poisson stream has no fixed offsets: use arrivals()")

    def arrivals(self, process: int = 0, processes: int = 1, chunk: int = CHUNK
                 ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        share = 1.0 / processes
        peak = self.shape.peak_rate() * share
        if peak <= 0:
            return
        rng = np.random.default_rng(self.seed * 1_000_003 + process)
        t, seq = 0.0, 0
        while t < self.total_s:
            times = t + np.cumsum(rng.exponential(1.0 / peak, chunk))
            keep = rng.random(chunk) * peak <= self.shape.rate_at_many(times) * share
            t = float(times[-1])
            times = times[keep & (times < self.total_s)]
            if times.size:
                ids = (np.arange(seq, seq + times.size, dtype=np.int64) * processes) + process
                seq += times.size
                yield ids, (times * 1e9).astype(np.int64)
