"""`profile = "constant"`: `rate` ops/s for the whole run, evenly spaced (wrk2's -R)."""

from __future__ import annotations

import math

import numpy as np

from harness.profiles.base import Profile


class Constant(Profile):
    def __init__(self, rate: float, total_s: float) -> None:
        super().__init__(total_s)
        self.rate = float(rate)

    def rate_at(self, t: float) -> float:
        return self.rate

    def rate_at_many(self, t: np.ndarray) -> np.ndarray:
        return np.full(t.shape, self.rate)

    def count(self) -> int:
        return math.ceil(self.rate * self.total_s - 1e-9) if self.rate > 0 else 0

    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        return index / self.rate
