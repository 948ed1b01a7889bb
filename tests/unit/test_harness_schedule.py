"""Arrival schedules: the intended start of every op, a pure function of the rate profile."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest

from harness.schedule import global_arrivals, process_arrivals, rate_at
from harness.spec import RateProfile, Step


def constant(rate: float, **kw: object) -> RateProfile:
    return RateProfile(profile="constant", rate=rate, **kw)


def ramp(start: float, end: float, **kw: object) -> RateProfile:
    return RateProfile(profile="ramp", rate=start, end_rate=end, **kw)


def steps(*pairs: tuple[float, float]) -> RateProfile:
    return RateProfile(profile="steps", steps=[Step(rate=r, duration_s=d) for r, d in pairs])


def burst(ops: int, every: float | None = None) -> RateProfile:
    return RateProfile(profile="burst", burst_ops=ops, burst_every_s=every)


def ramp_integral(r0: float, r1: float, total_s: float, t: float) -> float:
    """Expected arrivals in [0, t) of a linear ramp from r0 to r1 over total_s."""
    return r0 * t + (r1 - r0) * t * t / (2 * total_s)


# -- constant --------------------------------------------------------------------------------------


def test_constant_gives_rate_times_duration_arrivals() -> None:
    assert len(list(global_arrivals(constant(200), 3.0))) == 600


def test_constant_arrivals_are_evenly_spaced_from_zero() -> None:
    offsets = list(global_arrivals(constant(50), 2.0))
    assert offsets[0] == 0.0
    assert offsets == pytest.approx([j / 50 for j in range(100)], abs=1e-12)
    assert {round(b - a, 12) for a, b in pairwise(offsets)} == {0.02}
    assert offsets[-1] < 2.0


def test_constant_with_a_fractional_total_rounds_the_count_up() -> None:
    # 3 ops/s for 1.5 s: arrivals at 0, 1/3, 2/3, 1, 4/3 (the one at 5/3 s is past the end)
    assert list(global_arrivals(constant(3), 1.5)) == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3])


def test_constant_at_rate_zero_schedules_nothing() -> None:
    assert list(global_arrivals(constant(0), 10.0)) == []


def test_one_process_takes_the_whole_global_schedule() -> None:
    profile = constant(100)
    assert list(process_arrivals(profile, 2.0, 0, 1, seed=1)) == list(global_arrivals(profile, 2.0))


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize(
    "profile",
    [constant(250), ramp(10, 300), steps((40, 1.0), (200, 1.5)), burst(7, 0.5)],
    ids=["constant", "ramp", "steps", "burst"],
)
def test_processes_interleave_into_exactly_the_global_schedule(profile: RateProfile, count: int) -> None:
    total_s = 3.0
    shares = [list(process_arrivals(profile, total_s, i, count, seed=1)) for i in range(count)]
    assert sorted(t for share in shares for t in share) == list(global_arrivals(profile, total_s))
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1, "round-robin: shares differ by at most one op"


def test_process_i_takes_arrivals_i_i_plus_n_and_so_on() -> None:
    everything = list(global_arrivals(constant(10), 1.0))
    assert list(process_arrivals(constant(10), 1.0, 1, 3, seed=1)) == everything[1::3]


# -- ramp --------------------------------------------------------------------------------------------


def test_ramp_total_count_is_the_integral_of_the_rate() -> None:
    # from 10/s to 110/s over 10 s: 10 * 10 + 100 * 10 / 2 = 600 arrivals
    assert len(list(global_arrivals(ramp(10, 110), 10.0))) == 600


@pytest.mark.parametrize("t", [0.37, 1.5, 2.9, 5.05, 7.7, 9.99])
def test_ramp_cumulative_count_matches_the_integral_at_every_point(t: float) -> None:
    offsets = list(global_arrivals(ramp(10, 110), 10.0))
    expected = ramp_integral(10, 110, 10.0, t)
    assert sum(1 for x in offsets if x < t) == math.ceil(expected)


def test_ramp_up_packs_arrivals_closer_as_the_rate_grows() -> None:
    offsets = list(global_arrivals(ramp(10, 110), 10.0))
    gaps = [b - a for a, b in pairwise(offsets)]
    assert all(later < earlier for earlier, later in pairwise(gaps))
    # each gap is one over the rate at its midpoint
    profile = ramp(10, 110)
    for (a, b), gap in zip(pairwise(offsets), gaps, strict=True):
        assert gap == pytest.approx(1 / rate_at(profile, (a + b) / 2, 10.0), rel=1e-3)


def test_ramp_down_count_is_the_integral() -> None:
    # 100/s down to 0/s over 10 s: 500 arrivals, all inside the run
    offsets = list(global_arrivals(ramp(100, 0), 10.0))
    assert len(offsets) == 500
    assert all(0 <= t < 10.0 for t in offsets)
    assert sum(1 for x in offsets if x < 2.5) == math.ceil(ramp_integral(100, 0, 10.0, 2.5))


def test_ramp_from_zero_starts_at_offset_zero_and_counts_the_integral() -> None:
    offsets = list(global_arrivals(ramp(0, 100), 10.0))
    assert offsets[0] == 0.0
    assert len(offsets) == 500


def test_flat_ramp_is_a_constant_schedule() -> None:
    assert list(global_arrivals(ramp(20, 20), 2.0)) == pytest.approx(list(global_arrivals(constant(20), 2.0)))


# -- steps -------------------------------------------------------------------------------------------


def test_steps_follow_each_rate_for_its_duration() -> None:
    offsets = list(global_arrivals(steps((10, 2.0), (50, 1.0)), 3.0))
    assert sum(1 for t in offsets if t < 2.0) == 20
    assert sum(1 for t in offsets if 2.0 <= t < 3.0) == 50
    assert len(offsets) == 70


def test_the_last_step_holds_until_the_end_of_the_run() -> None:
    offsets = list(global_arrivals(steps((10, 2.0), (50, 1.0)), 5.0))
    assert sum(1 for t in offsets if t >= 3.0) == 100
    assert len(offsets) == 170


def test_steps_longer_than_the_run_are_cut_at_its_end() -> None:
    offsets = list(global_arrivals(steps((10, 2.0), (50, 1.0)), 2.5))
    assert len(offsets) == 20 + 25
    assert max(offsets) < 2.5


def test_a_zero_rate_step_is_a_pause() -> None:
    offsets = list(global_arrivals(steps((10, 1.0), (0, 1.0), (10, 1.0)), 3.0))
    assert not [t for t in offsets if 1.0 <= t < 2.0]
    assert len(offsets) == 20


def test_step_arrivals_are_in_order() -> None:
    offsets = list(global_arrivals(steps((30, 1.0), (7, 1.0), (90, 0.5)), 2.5))
    assert offsets == sorted(offsets)


# -- burst -------------------------------------------------------------------------------------------


def test_a_single_burst_puts_all_its_ops_at_offset_zero() -> None:
    assert list(global_arrivals(burst(25), 10.0)) == [0.0] * 25


def test_repeated_bursts_put_n_ops_at_each_period_start() -> None:
    offsets = list(global_arrivals(burst(5, 2.0), 5.0))
    assert offsets == [0.0] * 5 + [2.0] * 5 + [4.0] * 5


def test_burst_ignores_the_poisson_flag() -> None:
    profile = RateProfile(profile="burst", burst_ops=4, burst_every_s=1.0, poisson=True)
    assert list(process_arrivals(profile, 2.0, 0, 1, seed=3)) == [0.0] * 4 + [1.0] * 4


# -- poisson -----------------------------------------------------------------------------------------


def test_poisson_count_is_within_five_sigma_of_rate_times_duration() -> None:
    profile = constant(100, poisson=True)
    n = len(list(process_arrivals(profile, 100.0, 0, 1, seed=42)))
    mean = 100 * 100.0
    assert abs(n - mean) <= 5 * math.sqrt(mean), n


def test_poisson_is_deterministic_for_a_seed() -> None:
    profile = constant(200, poisson=True)
    first = list(process_arrivals(profile, 5.0, 0, 1, seed=7))
    again = list(process_arrivals(profile, 5.0, 0, 1, seed=7))
    other = list(process_arrivals(profile, 5.0, 0, 1, seed=8))
    assert first == again
    assert first != other


def test_poisson_arrivals_are_increasing_and_inside_the_run() -> None:
    offsets = list(process_arrivals(constant(300, poisson=True), 4.0, 0, 1, seed=5))
    assert all(a < b for a, b in pairwise(offsets))
    assert 0 < offsets[0] and offsets[-1] < 4.0


def test_poisson_mean_gap_is_one_over_the_rate() -> None:
    offsets = list(process_arrivals(constant(100, poisson=True), 100.0, 0, 1, seed=11))
    gaps = [b - a for a, b in pairwise(offsets)]
    mean_gap = sum(gaps) / len(gaps)
    # the standard error of the mean of ~10,000 exponential gaps is 1%
    assert mean_gap == pytest.approx(0.01, rel=0.05)


def test_poisson_processes_share_the_rate_and_differ_from_each_other() -> None:
    profile = constant(100, poisson=True)
    shares = [list(process_arrivals(profile, 100.0, i, 2, seed=42)) for i in range(2)]
    assert shares[0] != shares[1]
    total = sum(len(s) for s in shares)
    assert abs(total - 10_000) <= 5 * math.sqrt(10_000), total
    for share in shares:
        assert abs(len(share) - 5_000) <= 5 * math.sqrt(5_000), len(share)


def test_poisson_ramp_count_is_within_five_sigma_of_the_integral() -> None:
    profile = ramp(0, 200, poisson=True)
    offsets = list(process_arrivals(profile, 50.0, 0, 1, seed=9))
    expected = ramp_integral(0, 200, 50.0, 50.0)  # 5,000
    assert abs(len(offsets) - expected) <= 5 * math.sqrt(expected)
    first_half = sum(1 for t in offsets if t < 25.0)
    expected_half = ramp_integral(0, 200, 50.0, 25.0)  # 1,250: a quarter of the ops in the first half
    assert abs(first_half - expected_half) <= 5 * math.sqrt(expected_half)


# -- rate_at -----------------------------------------------------------------------------------------


def test_rate_at_of_a_constant_profile_is_its_rate() -> None:
    assert [rate_at(constant(75), t, 10.0) for t in (0.0, 5.0, 9.99)] == [75, 75, 75]


def test_rate_at_of_a_ramp_interpolates_and_holds_the_end_rate_after_it() -> None:
    profile = ramp(100, 300)
    assert rate_at(profile, 0.0, 10.0) == 100
    assert rate_at(profile, 5.0, 10.0) == 200
    assert rate_at(profile, 2.5, 10.0) == 150
    assert rate_at(profile, 12.0, 10.0) == 300


def test_rate_at_of_steps_is_the_current_step_then_the_last() -> None:
    profile = steps((10, 2.0), (50, 1.0))
    assert [rate_at(profile, t, 6.0) for t in (0.0, 1.99, 2.0, 2.5, 3.0, 5.5)] == [10, 10, 50, 50, 50, 50]


def test_rate_at_of_bursts_is_the_burst_in_its_first_second_and_zero_between() -> None:
    profile = burst(40, 3.0)
    assert [rate_at(profile, t, 10.0) for t in (0.0, 0.5, 1.0, 2.9, 3.2, 4.5)] == [40, 40, 0, 0, 40, 0]
    single = burst(40)
    assert [rate_at(single, t, 10.0) for t in (0.5, 1.5, 7.0)] == [40, 0, 0]
