"""Rate profiles, one module each (as k6 keeps one file per executor); `build` picks one from a spec."""

from __future__ import annotations

from harness.profiles.base import Profile
from harness.profiles.burst import Burst
from harness.profiles.constant import Constant
from harness.profiles.poisson import Poisson
from harness.profiles.ramp import Ramp
from harness.profiles.steps import Steps
from harness.spec import RateProfile

__all__ = ["Burst", "Constant", "Poisson", "Profile", "Ramp", "Steps", "build"]


def build(rate: RateProfile, total_s: float, seed: int = 1) -> Profile:
    """The profile of a spec's `[rate]` table over `total_s` seconds (Poisson if it asks)."""
    shape: Profile
    if rate.profile == "constant":
        shape = Constant(rate.rate, total_s)
    elif rate.profile == "ramp":
        shape = Ramp(rate.rate, float(rate.end_rate or 0.0), total_s)
    elif rate.profile == "steps":
        shape = Steps([(s.rate, s.duration_s) for s in rate.steps], total_s)
    else:
        return Burst(rate.burst_ops or 0, rate.burst_every_s, total_s)  # bursts are never Poisson
    return Poisson(shape, seed) if rate.poisson else shape
