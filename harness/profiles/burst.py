"""`profile = "burst"`: `burst_ops` ops all at once, once or every `burst_every_s` seconds."""

from __future__ import annotations

import math

import numpy as np

from harness.profiles.base import Profile


class Burst(Profile):
    def __init__(self, ops: int, every_s: float | None, total_s: float) -> None:
        super().__init__(total_s)
        self.ops = int(ops)
        self.every_s = every_s

    def rate_at(self, t: float) -> float:
        """The burst is reported as ops in the second it lands in."""
        if self.every_s is None:
            return float(self.ops) if t < 1.0 else 0.0
        return float(self.ops) if (t % self.every_s) < 1.0 else 0.0

    def peak_rate(self) -> float:
        return float(self.ops)

    def count(self) -> int:
        if self.total_s <= 0:
            return 0
        bursts = 1 if self.every_s is None else math.ceil(self.total_s / self.every_s - 1e-12)
        return self.ops * bursts

    def offsets_s(self, index: np.ndarray) -> np.ndarray:
        return (index // self.ops) * (self.every_s or 0.0)
