"""`profile = "steps"`: a list of (rate, duration_s); the last rate holds until the run ends."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.profiles.base import Profile


class Steps(Profile):
    def __init__(self, steps: Sequence[tuple[float, float]], total_s: float) -> None:
        super().__init__(total_s)
        spans: list[tuple[float, float, float]] = []  # (start, rate, span) cut to the run
        start = 0.0
        items = list(steps)
        covered = sum(d for _, d in items)
        if covered < total_s and items:
            items.append((items[-1][0], total_s - covered))
        for rate, duration in items:
            if start >= total_s:
                break
            spans.append((start, float(rate), min(float(duration), total_s - start)))
            start += float(duration)
        self._starts = np.array([s for s, _, _ in spans])
        self._rates = np.array([r for _, r, _ in spans])
        counts = [math.ceil(r * d - 1e-9) if r > 0 else 0 for _, r, d in spans]
        self._first = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)  # first index of each step
        self._bounds = np.array([s for s, _, _ in spans] + [start])

    def rate_at(self, t: float) -> float:
        if not self._rates.size:
            return 0.0
        k = int(np.searchsorted(self._starts, t, side="right")) - 1
        return float(self._rates[max(0, k)])

    def rate_at_many(self, t: np.ndarray) -> np.ndarray:
        k = np.clip(np.searchsorted(self._starts, t, side="right") - 1, 0, len(self._rates) - 1)
        return self._rates[k]

    def peak_rate(self) -> float:
        return float(self._rates.max()) if self._rates.size else 0.0

    def count(self) -> int:
        return int(self._first[-1])

    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self._first, index, side="right") - 1
        return self._starts[k] + (index - self._first[k]) / self._rates[k]
