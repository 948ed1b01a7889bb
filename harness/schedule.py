"""Arrival schedules: the intended start time of every op, decided before any response.

A schedule is a pure function of the rate profile, so it is the same whatever the
system under test does (open loop). The global schedule is a sequence of offsets
in seconds from the start of the run; with N generator processes, process i takes
arrivals i, i+N, i+2N, ... so the processes together follow the profile exactly.
Poisson arrivals are instead drawn per process at rate/N (a superposition of
Poisson processes is a Poisson process of the summed rate).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from harness.spec import RateProfile


def rate_at(profile: RateProfile, t: float, total_s: float) -> float:
    """Target rate (ops/s) at offset `t`; used for reporting target vs achieved."""
    if profile.profile == "constant":
        return profile.rate
    if profile.profile == "ramp":
        end = profile.end_rate if profile.end_rate is not None else profile.rate
        return profile.rate + (end - profile.rate) * min(t / total_s, 1.0) if total_s > 0 else end
    if profile.profile == "steps":
        start = 0.0
        for step in profile.steps:
            if t < start + step.duration_s:
                return step.rate
            start += step.duration_s
        return profile.steps[-1].rate
    # burst: report the burst as ops in the second it lands in
    every = profile.burst_every_s
    ops = profile.burst_ops or 0
    if every is None:
        return float(ops) if t < 1.0 else 0.0
    return float(ops) if (t % every) < 1.0 else 0.0


def _constant(rate: float, total_s: float) -> Iterator[float]:
    if rate <= 0:
        return
    n = math.ceil(rate * total_s - 1e-9)
    inv = 1.0 / rate
    for j in range(n):
        yield j * inv


def _ramp(r0: float, r1: float, total_s: float) -> Iterator[float]:
    # cumulative arrivals N(t) = r0 t + (r1 - r0) t^2 / (2T); arrival j at N(t) = j
    a = (r1 - r0) / (2 * total_s)
    total = r0 * total_s + a * total_s * total_s
    j = 0
    while j < total - 1e-9:
        if abs(a) < 1e-12:
            t = j / r0
        else:
            disc = r0 * r0 + 4 * a * j
            t = (-r0 + math.sqrt(max(disc, 0.0))) / (2 * a)
        if t >= total_s:
            return
        yield t
        j += 1


def _steps(profile: RateProfile, total_s: float) -> Iterator[float]:
    start = 0.0
    steps = list(profile.steps)
    covered = sum(s.duration_s for s in steps)
    if covered < total_s:  # the last rate holds until the end
        steps.append(type(steps[-1])(rate=steps[-1].rate, duration_s=total_s - covered))
    for step in steps:
        if start >= total_s:
            return
        span = min(step.duration_s, total_s - start)
        for t in _constant(step.rate, span):
            yield start + t
        start += step.duration_s


def _burst(profile: RateProfile, total_s: float) -> Iterator[float]:
    ops = profile.burst_ops or 0
    every = profile.burst_every_s
    t = 0.0
    while t < total_s:
        for _ in range(ops):
            yield t
        if every is None:
            return
        t += every


def global_arrivals(profile: RateProfile, total_s: float) -> Iterator[float]:
    """Offsets (s) of every arrival of the run, all processes together, in order."""
    kind = profile.profile
    if kind == "constant":
        return _constant(profile.rate, total_s)
    if kind == "ramp":
        return _ramp(profile.rate, float(profile.end_rate or 0.0), total_s)
    if kind == "steps":
        return _steps(profile, total_s)
    return _burst(profile, total_s)


def _poisson(profile: RateProfile, total_s: float, share: float, rng: random.Random) -> Iterator[float]:
    # thinning (Lewis-Shedler) handles every profile shape with one code path
    peak = max(
        [profile.rate, profile.end_rate or 0.0, *(s.rate for s in profile.steps)]
    ) * share
    if peak <= 0:
        return
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= total_s:
            return
        if rng.random() * peak <= rate_at(profile, t, total_s) * share:
            yield t


def process_arrivals(
    profile: RateProfile, total_s: float, index: int, count: int, seed: int
) -> Iterator[float]:
    """The arrivals that generator process `index` of `count` is responsible for."""
    if profile.poisson and profile.profile != "burst":
        return _poisson(profile, total_s, 1.0 / count, random.Random(seed * 1_000_003 + index))
    arrivals = global_arrivals(profile, total_s)
    if count == 1:
        return arrivals
    return (t for j, t in enumerate(arrivals) if j % count == index)
