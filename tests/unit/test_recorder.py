"""The hot-path recorder (harness/recorder.py): `add` buffers, `fold` counts, `take` hands an interval over.

Whatever the folding, what an interval holds is bit for bit what `record_value` would have recorded.
"""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.recorder import Recorder
from harness.results.hdr import HIGHEST_US, Sparse, merge, new_histogram, stats


def one_by_one(values: list[int] | np.ndarray) -> HdrHistogram:
    hist = new_histogram()
    for v in values:
        assert hist.record_value(int(v)), f"record_value refused {v}"
    return hist


def lognormal_us(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.minimum(rng.lognormal(mean=np.log(20_000), sigma=1.5, size=n), HIGHEST_US).astype(np.int64)


def recorded(values: list[int] | np.ndarray, fold_every: int = 0) -> Recorder:
    rec = Recorder()
    for i, v in enumerate(values, 1):
        rec.add(int(v))
        if fold_every and i % fold_every == 0:
            rec.fold()
    return rec


def taken(rec: Recorder) -> Sparse:
    sparse = rec.take()
    assert sparse is not None
    return sparse


def assert_same(got: HdrHistogram, want: HdrHistogram) -> None:
    assert got.get_total_count() == want.get_total_count()
    assert (got.min_value, got.max_value) == (want.min_value, want.max_value)
    assert got.equals(want)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_interval_is_bit_identical_to_record_value(seed: int) -> None:
    values = lognormal_us(seed, 20_000)
    assert_same(taken(recorded(values)).histogram(), one_by_one(values))


def test_folding_along_the_way_records_each_sample_once() -> None:
    values = lognormal_us(4, 5_000)
    assert_same(taken(recorded(values, fold_every=333)).histogram(), one_by_one(values))


def test_a_fold_of_an_empty_buffer_changes_nothing() -> None:
    rec = recorded([10, 20])
    rec.fold()
    rec.fold()
    assert_same(taken(rec).histogram(), one_by_one([10, 20]))


def test_take_starts_the_next_interval_empty() -> None:
    rec = recorded([10, 20, 30])
    first = taken(rec)
    assert rec.take() is None
    rec.add(40)
    second = taken(rec)
    assert (first.total, second.total) == (3, 1)
    assert_same(second.histogram(), one_by_one([40]))


def test_a_recorder_that_saw_nothing_takes_none() -> None:
    assert Recorder().take() is None


def test_each_interval_keeps_its_own_raw_min_and_max() -> None:
    rec = recorded([5, 9_000_000])
    first = taken(rec)
    rec.add(700)
    rec.add(800)
    second = taken(rec)
    assert (first.min, first.max) == (5, 9_000_000)
    assert (second.min, second.max) == (700, 800)


def test_len_counts_buffered_and_folded_samples_until_taken() -> None:
    rec = recorded([1, 2, 3])
    rec.fold()
    rec.add(4)
    assert len(rec) == 4
    rec.take()
    assert len(rec) == 0


def test_values_above_the_range_are_clipped_and_counted() -> None:
    rec = recorded([5, HIGHEST_US + 1, 2**40])
    sparse = taken(rec)
    assert (rec.clipped, sparse.clipped, sparse.total) == (2, 2, 3), "a clipped sample is still a sample"
    assert_same(sparse.histogram(), one_by_one([5, HIGHEST_US, HIGHEST_US]))


def test_negative_values_are_clipped_to_zero_and_counted() -> None:
    rec = recorded([-1, -1_000_000, 7])
    sparse = taken(rec)
    assert (rec.clipped, sparse.clipped) == (2, 2)
    assert sparse.histogram().get_count_at_value(0) == 2


def test_an_intervals_clipped_count_is_its_own_and_the_recorders_is_the_running_total() -> None:
    rec = recorded([HIGHEST_US + 1])
    first = taken(rec)
    rec.add(5)
    second = taken(rec)
    rec.add(-1)
    third = taken(rec)
    assert (first.clipped, second.clipped, third.clipped) == (1, 0, 1)
    assert rec.clipped == 2


def test_two_processes_recorders_merge_into_one_histogram_of_all_values() -> None:
    values = lognormal_us(10, 10_000)
    shards = [recorded(values[0::2], fold_every=500), recorded(values[1::2], fold_every=700)]
    merged = merge([s.take() for s in shards])
    assert merged is not None
    everything = one_by_one(values)
    assert_same(merged.histogram(), everything)
    assert stats(merged.histogram()) == stats(everything)
