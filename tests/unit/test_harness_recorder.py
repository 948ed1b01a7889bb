"""The batched HDR recorder: what it records is exactly what `record_value` would record, one by one."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.recorder import (
    HIGHEST_US,
    LOWEST_US,
    PERCENTILE_KEYS,
    SIGNIFICANT_DIGITS,
    LatencyBuffer,
    decode,
    encode,
    merge_encoded,
    new_histogram,
    record_batch,
    stats,
    values_at,
)


def one_by_one(values: list[int] | np.ndarray) -> HdrHistogram:
    hist = new_histogram()
    for v in values:
        assert hist.record_value(int(v)), f"record_value refused {v}"
    return hist


def lognormal_us(seed: int, n: int) -> np.ndarray:
    """Latency-shaped data: median ~20 ms, a long tail reaching minutes."""
    rng = np.random.default_rng(seed)
    return np.minimum(rng.lognormal(mean=np.log(20_000), sigma=1.5, size=n), HIGHEST_US).astype(np.int64)


def boundary_values() -> list[int]:
    """Both ends of the linear range, every power-of-two bucket edge, and each bucket's equivalents."""
    hist = new_histogram()
    values = {0, 1, 2, 1023, 1024, 1025, 2046, 2047, 2048, 2049, HIGHEST_US - 1, HIGHEST_US}
    for k in range(11, 32):
        edge = 1 << k
        values |= {edge - 1, edge, edge + 1, edge + (edge >> 1)}
        values |= {hist.get_highest_equivalent_value(edge), hist.get_lowest_equivalent_value(edge + 7)}
    return sorted(v for v in values if 0 <= v <= HIGHEST_US)


def assert_same(batched: HdrHistogram, single: HdrHistogram, *, raw_extremes: bool = True) -> None:
    """Equal counts in every bucket; with `raw_extremes`, also the exact recorded min and max.

    A decoded histogram knows its extremes only to bucket precision, so the raw check is for
    histograms recorded in this process.
    """
    assert batched.get_total_count() == single.get_total_count()
    if raw_extremes:
        assert batched.min_value == single.min_value
        assert batched.max_value == single.max_value
    assert batched.equals(single)


def test_new_histogram_has_the_project_shape() -> None:
    hist = new_histogram()
    assert (hist.lowest_trackable_value, hist.highest_trackable_value, hist.significant_figures) == (
        LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS
    )
    assert HIGHEST_US == 3_600 * 1_000_000


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_record_batch_equals_record_value_for_lognormal_latencies(seed: int) -> None:
    values = lognormal_us(seed, 20_000)
    batched = new_histogram()
    assert record_batch(batched, values) == 0
    assert_same(batched, one_by_one(values))


def test_record_batch_equals_record_value_at_edges_and_bucket_boundaries() -> None:
    values = boundary_values()
    batched = new_histogram()
    assert record_batch(batched, np.array(values, dtype=np.int64)) == 0
    assert_same(batched, one_by_one(values))


@pytest.mark.parametrize("value", [0, 1, 2047, 2048, 4095, 4096, HIGHEST_US])
def test_a_single_edge_value_lands_in_the_same_bucket_as_record_value(value: int) -> None:
    batched = new_histogram()
    record_batch(batched, np.array([value], dtype=np.int64))
    single = one_by_one([value])
    assert_same(batched, single)
    assert batched.get_count_at_value(value) == 1


def test_record_batch_adds_to_what_the_histogram_already_holds() -> None:
    first, second = lognormal_us(4, 3_000), lognormal_us(5, 3_000)
    batched = new_histogram()
    record_batch(batched, first)
    record_batch(batched, second)
    assert_same(batched, one_by_one(np.concatenate([first, second])))


def test_record_batch_of_nothing_changes_nothing() -> None:
    hist = new_histogram()
    assert record_batch(hist, np.array([], dtype=np.int64)) == 0
    assert hist.get_total_count() == 0
    assert hist.equals(new_histogram())


def test_values_above_the_range_are_clipped_to_the_highest_value_and_counted() -> None:
    values = np.array([5, HIGHEST_US + 1, 10 * HIGHEST_US, 2**40], dtype=np.int64)
    batched = new_histogram()
    assert record_batch(batched, values) == 3
    assert batched.get_total_count() == 4, "a clipped sample is still a sample"
    assert_same(batched, one_by_one([5, HIGHEST_US, HIGHEST_US, HIGHEST_US]))
    assert batched.max_value == HIGHEST_US


def test_negative_values_are_clipped_to_zero_and_counted() -> None:
    batched = new_histogram()
    assert record_batch(batched, np.array([-1, -1_000_000, 7], dtype=np.int64)) == 2
    assert_same(batched, one_by_one([0, 0, 7]))
    assert batched.get_count_at_value(0) == 2


def test_drain_into_equals_record_value_and_empties_the_buffer() -> None:
    values = lognormal_us(6, 5_000)
    buf = LatencyBuffer()
    for v in values:
        buf.add(int(v))
    assert len(buf) == 5_000
    hist = new_histogram()
    assert buf.drain_into(hist) == 0
    assert len(buf) == 0
    assert_same(hist, one_by_one(values))


def test_drain_into_reports_clipped_samples() -> None:
    buf = LatencyBuffer()
    for v in (HIGHEST_US + 5, -3, 100):
        buf.add(v)
    hist = new_histogram()
    assert buf.drain_into(hist) == 2
    assert_same(hist, one_by_one([HIGHEST_US, 0, 100]))


def test_drain_into_twice_records_each_sample_once() -> None:
    buf = LatencyBuffer()
    hist = new_histogram()
    for v in (10, 20, 30):
        buf.add(v)
    buf.drain_into(hist)
    assert buf.drain_into(hist) == 0
    buf.add(40)
    buf.drain_into(hist)
    assert_same(hist, one_by_one([10, 20, 30, 40]))


def test_stats_of_an_empty_histogram_is_only_a_zero_count() -> None:
    assert stats(new_histogram()) == {"count": 0}


def test_stats_has_count_min_mean_percentiles_and_max() -> None:
    hist = one_by_one(range(1, 1001))
    block = stats(hist)
    assert list(block) == ["count", "min", "mean", *PERCENTILE_KEYS, "max"]
    assert PERCENTILE_KEYS == ("p50", "p90", "p95", "p99", "p99_9", "p99_99")
    assert block["count"] == 1000
    assert block["min"] == 1
    assert block["max"] == 1000
    assert block["mean"] == 500.5
    assert (block["p50"], block["p90"], block["p99"], block["p99_9"]) == (500, 900, 990, 999)


def test_encode_decode_round_trip_preserves_the_histogram() -> None:
    hist = new_histogram()
    record_batch(hist, np.concatenate([lognormal_us(7, 4_000), np.array(boundary_values())]))
    text = encode(hist)
    assert isinstance(text, str) and text.isascii()
    assert_same(decode(text), hist, raw_extremes=False)


def test_merge_encoded_adds_bucket_by_bucket() -> None:
    a, b = lognormal_us(8, 2_000), lognormal_us(9, 2_000)
    target = one_by_one(a)
    merge_encoded(target, encode(one_by_one(b)))
    assert target.equals(one_by_one(np.concatenate([a, b])))


def test_merging_two_process_histograms_equals_one_histogram_of_all_values() -> None:
    values = lognormal_us(10, 10_000)
    # two generator processes take alternate arrivals, record locally and ship encoded histograms
    shards = [values[0::2], values[1::2]]
    shipped = []
    for shard in shards:
        buf = LatencyBuffer()
        for v in shard:
            buf.add(int(v))
        local = new_histogram()
        buf.drain_into(local)
        shipped.append(encode(local))
    merged = new_histogram()
    for enc in shipped:
        merge_encoded(merged, enc)
    everything = one_by_one(values)
    assert_same(merged, everything, raw_extremes=False)
    assert stats(merged) == stats(everything)


@pytest.mark.parametrize("seed", range(12))
def test_values_at_answers_exactly_as_get_value_at_percentile(seed: int) -> None:
    rng = random.Random(seed)
    hist = new_histogram()
    for _ in range(rng.randint(1, 3000)):
        hist.record_value(int(rng.lognormvariate(rng.uniform(0, 12), 2)) % HIGHEST_US)
    percentiles = (0.0, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0)
    assert values_at(hist, percentiles) == [hist.get_value_at_percentile(p) for p in percentiles]


def test_values_at_of_an_empty_histogram_is_zero() -> None:
    assert values_at(new_histogram(), (50.0, 99.0)) == [0, 0]
