"""Rate profiles (harness/profiles/): the intended start of every op, a pure function of the spec's [rate].

`arrivals(process, processes, chunk)` yields (ids, offsets in ns) chunk by chunk; process i of N
takes the global arrivals i, i+N, ..., and an op's id is its global index.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest

from harness.profiles import Burst, Constant, Poisson, Profile, Ramp, Steps, build
from harness.spec import RateProfile, Step


def constant(rate: float, **kw: object) -> RateProfile:
    return RateProfile(profile="constant", rate=rate, **kw)


def ramp(start: float, end: float, **kw: object) -> RateProfile:
    return RateProfile(profile="ramp", rate=start, end_rate=end, **kw)


def steps(*pairs: tuple[float, float]) -> RateProfile:
    return RateProfile(profile="steps", steps=[Step(rate=r, duration_s=d) for r, d in pairs])


def burst(ops: int, every: float | None = None, **kw: object) -> RateProfile:
    return RateProfile(profile="burst", burst_ops=ops, burst_every_s=every, **kw)


def arrivals(profile: Profile, process: int = 0, processes: int = 1, chunk: int = 4096
             ) -> tuple[list[int], list[int]]:
    """(ids, offsets in ns) of one process, all chunks joined."""
    ids: list[int] = []
    offsets: list[int] = []
    for chunk_ids, chunk_offsets in profile.arrivals(process, processes, chunk):
        ids += chunk_ids.tolist()
        offsets += chunk_offsets.tolist()
    return ids, offsets


def seconds(rate: RateProfile, total_s: float, process: int = 0, processes: int = 1, seed: int = 1) -> list[float]:
    """Offsets in seconds of one process's arrivals of the profile built from `rate`."""
    return [ns / 1e9 for ns in arrivals(build(rate, total_s, seed), process, processes)[1]]


def ramp_integral(r0: float, r1: float, total_s: float, t: float) -> float:
    """Expected arrivals in [0, t) of a linear ramp from r0 to r1 over total_s."""
    return r0 * t + (r1 - r0) * t * t / (2 * total_s)


# -- build -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "cls"), [(constant(10), Constant), (ramp(1, 5), Ramp),
                                           (steps((1, 1.0)), Steps), (burst(3), Burst)],
                         ids=["constant", "ramp", "steps", "burst"])
def test_build_picks_one_class_per_profile(rate: RateProfile, cls: type[Profile]) -> None:
    assert type(build(rate, 10.0)) is cls


def test_build_wraps_a_poisson_profile_around_its_shape() -> None:
    profile = build(ramp(10, 20, poisson=True), 10.0, seed=3)
    assert isinstance(profile, Poisson)
    assert isinstance(profile.shape, Ramp)
    assert profile.seed == 3


# -- arrivals: ids, chunks and processes -------------------------------------------------------------


def test_arrivals_come_as_int64_numpy_arrays() -> None:
    ids, offsets = next(Constant(10, 1.0).arrivals())
    assert (ids.dtype, offsets.dtype) == (np.int64, np.int64)


def test_arrivals_come_in_chunks_of_the_asked_size() -> None:
    sizes = [ids.size for ids, _ in Constant(100, 1.0).arrivals(0, 1, chunk=30)]
    assert sizes == [30, 30, 30, 10]


def test_the_chunk_size_does_not_change_the_schedule() -> None:
    profile = Ramp(10, 300, 3.0)
    assert arrivals(profile, 1, 3, chunk=7) == arrivals(profile, 1, 3, chunk=4096)


def test_an_ops_id_is_its_index_in_the_global_schedule() -> None:
    ids, _ = arrivals(Constant(50, 2.0))
    assert ids == list(range(100))


def test_process_i_takes_arrivals_i_i_plus_n_and_so_on() -> None:
    _, everything = arrivals(Constant(10, 1.0))
    ids, offsets = arrivals(Constant(10, 1.0), 1, 3)
    assert ids == [1, 4, 7]
    assert offsets == everything[1::3]


def test_one_process_takes_the_whole_global_schedule() -> None:
    profile = Constant(100, 2.0)
    assert arrivals(profile, 0, 1) == (list(range(200)), [int(j / 100 * 1e9) for j in range(200)])


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize(
    "rate",
    [constant(250), ramp(10, 300), steps((40, 1.0), (200, 1.5)), burst(7, 0.5)],
    ids=["constant", "ramp", "steps", "burst"],
)
def test_processes_interleave_into_exactly_the_global_schedule(rate: RateProfile, count: int) -> None:
    profile = build(rate, 3.0)
    shares = [arrivals(profile, i, count, chunk=100) for i in range(count)]
    merged = sorted((i, t) for ids, offsets in shares for i, t in zip(ids, offsets, strict=True))
    assert merged == list(zip(*arrivals(profile), strict=True))
    sizes = [len(ids) for ids, _ in shares]
    assert max(sizes) - min(sizes) <= 1, "round-robin: shares differ by at most one op"


# -- constant ----------------------------------------------------------------------------------------


def test_constant_gives_rate_times_duration_arrivals() -> None:
    assert Constant(200, 3.0).count() == 600
    assert len(seconds(constant(200), 3.0)) == 600


def test_constant_arrivals_are_evenly_spaced_from_zero() -> None:
    _, offsets = arrivals(Constant(50, 2.0))
    assert offsets[0] == 0
    assert {b - a for a, b in pairwise(offsets)} == {20_000_000}
    assert offsets[-1] < 2_000_000_000


def test_constant_with_a_fractional_total_rounds_the_count_up() -> None:
    # 3 ops/s for 1.5 s: arrivals at 0, 1/3, 2/3, 1, 4/3 (the one at 5/3 s is past the end)
    assert seconds(constant(3), 1.5) == pytest.approx([0, 1 / 3, 2 / 3, 1, 4 / 3], abs=1e-9)


def test_constant_at_rate_zero_schedules_nothing() -> None:
    assert Constant(0, 10.0).count() == 0
    assert arrivals(Constant(0, 10.0)) == ([], [])


# -- ramp --------------------------------------------------------------------------------------------


def test_ramp_total_count_is_the_integral_of_the_rate() -> None:
    # from 10/s to 110/s over 10 s: 10 * 10 + 100 * 10 / 2 = 600 arrivals
    assert len(seconds(ramp(10, 110), 10.0)) == 600


@pytest.mark.parametrize("t", [0.37, 1.5, 2.9, 5.05, 7.7, 9.99])
def test_ramp_cumulative_count_matches_the_integral_at_every_point(t: float) -> None:
    offsets = seconds(ramp(10, 110), 10.0)
    assert sum(1 for x in offsets if x < t) == math.ceil(ramp_integral(10, 110, 10.0, t))


def test_ramp_up_packs_arrivals_closer_as_the_rate_grows() -> None:
    profile = build(ramp(10, 110), 10.0)
    offsets = seconds(ramp(10, 110), 10.0)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert all(later < earlier for earlier, later in pairwise(gaps))
    # each gap is one over the rate at its midpoint
    for (a, b), gap in zip(pairwise(offsets), gaps, strict=True):
        assert gap == pytest.approx(1 / profile.rate_at((a + b) / 2), rel=1e-3)


def test_ramp_down_count_is_the_integral() -> None:
    # 100/s down to 0/s over 10 s: 500 arrivals, all inside the run
    offsets = seconds(ramp(100, 0), 10.0)
    assert len(offsets) == 500
    assert all(0 <= t < 10.0 for t in offsets)
    assert sum(1 for x in offsets if x < 2.5) == math.ceil(ramp_integral(100, 0, 10.0, 2.5))


def test_ramp_from_zero_starts_at_offset_zero_and_counts_the_integral() -> None:
    offsets = seconds(ramp(0, 100), 10.0)
    assert offsets[0] == 0.0
    assert len(offsets) == 500


def test_flat_ramp_is_a_constant_schedule() -> None:
    assert seconds(ramp(20, 20), 2.0) == pytest.approx(seconds(constant(20), 2.0), abs=1e-9)


# -- steps -------------------------------------------------------------------------------------------


def test_steps_follow_each_rate_for_its_duration() -> None:
    offsets = seconds(steps((10, 2.0), (50, 1.0)), 3.0)
    assert sum(1 for t in offsets if t < 2.0) == 20
    assert sum(1 for t in offsets if 2.0 <= t < 3.0) == 50
    assert len(offsets) == 70


def test_the_last_step_holds_until_the_end_of_the_run() -> None:
    offsets = seconds(steps((10, 2.0), (50, 1.0)), 5.0)
    assert sum(1 for t in offsets if t >= 3.0) == 100
    assert len(offsets) == 170


def test_steps_longer_than_the_run_are_cut_at_its_end() -> None:
    offsets = seconds(steps((10, 2.0), (50, 1.0)), 2.5)
    assert len(offsets) == 20 + 25
    assert max(offsets) < 2.5


def test_a_zero_rate_step_is_a_pause() -> None:
    offsets = seconds(steps((10, 1.0), (0, 1.0), (10, 1.0)), 3.0)
    assert not [t for t in offsets if 1.0 <= t < 2.0]
    assert len(offsets) == 20


def test_step_arrivals_are_in_order() -> None:
    offsets = seconds(steps((30, 1.0), (7, 1.0), (90, 0.5)), 2.5)
    assert offsets == sorted(offsets)


# -- burst -------------------------------------------------------------------------------------------


def test_a_single_burst_puts_all_its_ops_at_offset_zero() -> None:
    assert seconds(burst(25), 10.0) == [0.0] * 25


def test_repeated_bursts_put_n_ops_at_each_period_start() -> None:
    assert seconds(burst(5, 2.0), 5.0) == [0.0] * 5 + [2.0] * 5 + [4.0] * 5


def test_burst_ignores_the_poisson_flag() -> None:
    profile = build(burst(4, 1.0, poisson=True), 2.0, seed=3)
    assert isinstance(profile, Burst)
    assert seconds(burst(4, 1.0, poisson=True), 2.0, seed=3) == [0.0] * 4 + [1.0] * 4


# -- poisson -----------------------------------------------------------------------------------------


def test_poisson_count_is_within_five_sigma_of_rate_times_duration() -> None:
    n = len(seconds(constant(100, poisson=True), 100.0, seed=42))
    mean = 100 * 100.0
    assert abs(n - mean) <= 5 * math.sqrt(mean), n


def test_poisson_is_deterministic_for_a_seed() -> None:
    first = arrivals(build(constant(200, poisson=True), 5.0, seed=7))
    again = arrivals(build(constant(200, poisson=True), 5.0, seed=7))
    other = arrivals(build(constant(200, poisson=True), 5.0, seed=8))
    assert first == again
    assert first != other


def test_poisson_arrivals_are_increasing_and_inside_the_run() -> None:
    offsets = seconds(constant(300, poisson=True), 4.0, seed=5)
    assert all(a < b for a, b in pairwise(offsets))
    assert 0 < offsets[0] and offsets[-1] < 4.0


def test_poisson_mean_gap_is_one_over_the_rate() -> None:
    offsets = seconds(constant(100, poisson=True), 100.0, seed=11)
    gaps = [b - a for a, b in pairwise(offsets)]
    # the standard error of the mean of ~10,000 exponential gaps is 1%
    assert sum(gaps) / len(gaps) == pytest.approx(0.01, rel=0.05)


def test_poisson_processes_share_the_rate_and_differ_from_each_other() -> None:
    shares = [seconds(constant(100, poisson=True), 100.0, i, 2, seed=42) for i in range(2)]
    assert shares[0] != shares[1]
    total = sum(len(s) for s in shares)
    assert abs(total - 10_000) <= 5 * math.sqrt(10_000), total
    for share in shares:
        assert abs(len(share) - 5_000) <= 5 * math.sqrt(5_000), len(share)


def test_poisson_ids_are_the_sequence_times_n_plus_the_process() -> None:
    ids, _ = arrivals(build(constant(50, poisson=True), 2.0, seed=4), 2, 3)
    assert ids == [seq * 3 + 2 for seq in range(len(ids))]


def test_poisson_ids_are_unique_across_processes() -> None:
    profile = build(constant(300, poisson=True), 2.0, seed=4)
    ids = [i for p in range(3) for i in arrivals(profile, p, 3, chunk=50)[0]]
    assert len(ids) == len(set(ids))


def test_poisson_ramp_count_is_within_five_sigma_of_the_integral() -> None:
    offsets = seconds(ramp(0, 200, poisson=True), 50.0, seed=9)
    expected = ramp_integral(0, 200, 50.0, 50.0)  # 5,000
    assert abs(len(offsets) - expected) <= 5 * math.sqrt(expected)
    first_half = sum(1 for t in offsets if t < 25.0)
    expected_half = ramp_integral(0, 200, 50.0, 25.0)  # 1,250: a quarter of the ops in the first half
    assert abs(first_half - expected_half) <= 5 * math.sqrt(expected_half)


def test_a_poisson_stream_has_no_fixed_offsets() -> None:
    with pytest.raises(TypeError, match="arrivals"):
        Poisson(Constant(10, 1.0), seed=1).offsets_s(np.arange(3))


# -- rate_at -----------------------------------------------------------------------------------------


def test_rate_at_of_a_constant_profile_is_its_rate() -> None:
    assert [Constant(75, 10.0).rate_at(t) for t in (0.0, 5.0, 9.99)] == [75, 75, 75]


def test_rate_at_of_a_ramp_interpolates_and_holds_the_end_rate_after_it() -> None:
    profile = Ramp(100, 300, 10.0)
    assert [profile.rate_at(t) for t in (0.0, 2.5, 5.0, 12.0)] == [100, 150, 200, 300]


def test_rate_at_of_steps_is_the_current_step_then_the_last() -> None:
    profile = Steps([(10, 2.0), (50, 1.0)], 6.0)
    assert [profile.rate_at(t) for t in (0.0, 1.99, 2.0, 2.5, 3.0, 5.5)] == [10, 10, 50, 50, 50, 50]


def test_rate_at_of_bursts_is_the_burst_in_its_first_second_and_zero_between() -> None:
    profile = Burst(40, 3.0, 10.0)
    assert [profile.rate_at(t) for t in (0.0, 0.5, 1.0, 2.9, 3.2, 4.5)] == [40, 40, 0, 0, 40, 0]
    single = Burst(40, None, 10.0)
    assert [single.rate_at(t) for t in (0.5, 1.5, 7.0)] == [40, 0, 0]


def test_rate_at_of_a_poisson_profile_is_its_shapes() -> None:
    profile = build(ramp(100, 300, poisson=True), 10.0)
    assert profile.rate_at(5.0) == 200


@pytest.mark.parametrize("profile", [Constant(75, 10.0), Ramp(100, 300, 10.0), Steps([(10, 2.0), (50, 1.0)], 6.0)],
                         ids=["constant", "ramp", "steps"])
def test_rate_at_many_agrees_with_rate_at(profile: Profile) -> None:
    t = np.array([0.0, 1.0, 2.0, 2.5, 5.0, 9.0])
    assert profile.rate_at_many(t).tolist() == [profile.rate_at(x) for x in t]


def test_peak_rate_is_the_highest_rate_of_the_profile() -> None:
    assert (Ramp(300, 100, 10.0).peak_rate(), Steps([(10, 1.0), (70, 1.0), (20, 1.0)], 3.0).peak_rate(),
            Burst(40, 3.0, 10.0).peak_rate()) == (300, 70, 40)
