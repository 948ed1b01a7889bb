"""`profile = "ramp"`: the rate moves linearly from `rate` to `end_rate` over the run.

The cumulative count is N(t) = r0 t + (r1 - r0) t^2 / 2T; arrival j falls where N(t) = j.
"""

from __future__ import annotations

import math

import numpy as np

from harness.profiles.base import Profile


class Ramp(Profile):
    def __init__(self, rate: float, end_rate: float, total_s: float) -> None:
        super().__init__(total_s)
        self.r0, self.r1 = float(rate), float(end_rate)
        self._a = (self.r1 - self.r0) / (2 * self.total_s) if self.total_s > 0 else 0.0

    def rate_at(self, t: float) -> float:
        if self.total_s <= 0:
            return self.r1
        return self.r0 + (self.r1 - self.r0) * min(max(t, 0.0) / self.total_s, 1.0)

    def rate_at_many(self, t: np.ndarray) -> np.ndarray:
        return self.r0 + (self.r1 - self.r0) * np.clip(t / self.total_s, 0.0, 1.0)

    def peak_rate(self) -> float:
        return max(self.r0, self.r1)

    def count(self) -> int:
        total = self.r0 * self.total_s + self._a * self.total_s * self.total_s
        return max(0, math.ceil(total - 1e-9))

    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        j = index.astype(np.float64)
        if abs(self._a) < 1e-12:
            return j / self.r0
        disc = np.maximum(self.r0 * self.r0 + 4 * self._a * j, 0.0)
        return np.minimum((-self.r0 + np.sqrt(disc)) / (2 * self._a), np.nextafter(self.total_s, 0))
