"""The echo target's latency model: a base distribution plus periodic whole-service stalls.

A request that arrives during a stall is held until the stall ends, then gets its
base latency. With stalls of S seconds every P seconds at a constant arrival rate,
a share S/P of requests is delayed by a uniform 0..S on top of the base, which
gives the analytic truth the truth tests compare against.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class LatencyModel:
    base_ms: float = 1.0
    dist: str = "constant"  # constant | uniform | exponential
    spread_ms: float = 0.0
    stall_every_s: float = 0.0
    stall_for_s: float = 0.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.dist not in ("constant", "uniform", "exponential"):
            raise ValueError(f"dist must be constant, uniform or exponential, not {self.dist!r}")
        self._rng = random.Random(self.seed)

    def hold_s(self, since_start_s: float) -> float:
        """Time until the current stall ends (0 outside stalls)."""
        if self.stall_every_s <= 0 or self.stall_for_s <= 0:
            return 0.0
        phase = since_start_s % self.stall_every_s
        return self.stall_for_s - phase if phase < self.stall_for_s else 0.0

    def base_s(self) -> float:
        base = self.base_ms / 1000.0
        if self.dist == "uniform":
            return base + self._rng.uniform(0.0, self.spread_ms / 1000.0)
        if self.dist == "exponential" and self.spread_ms > 0:
            return base + self._rng.expovariate(1000.0 / self.spread_ms)
        return base

    def delay_s(self, since_start_s: float) -> float:
        return self.hold_s(since_start_s) + self.base_s()

    def truth_ms(self, quantile: float) -> float:
        """Analytic response-time quantile for a constant base (what the truth tests expect)."""
        share = self.stall_for_s / self.stall_every_s if self.stall_every_s > 0 else 0.0
        if quantile <= 1.0 - share:
            return self.base_ms
        return self.base_ms + (quantile - (1.0 - share)) / share * self.stall_for_s * 1000.0
