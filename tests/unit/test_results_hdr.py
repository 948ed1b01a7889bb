"""The one HDR shape and its bucket arithmetic (harness/results/hdr.py): exactly what `record_value` records."""

from __future__ import annotations

import pickle
import random
import sys

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from harness.results.hdr import (
    HIGHEST_US,
    LOWEST_US,
    PERCENTILE_KEYS,
    SIGNIFICANT_DIGITS,
    Sparse,
    add,
    bucket_indices,
    counts_len,
    decode,
    encode,
    merge,
    new_histogram,
    reset,
    stats,
    value_table,
    values_at,
)


def one_by_one(values: list[int] | np.ndarray | range) -> HdrHistogram:
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


def assert_same(got: HdrHistogram, want: HdrHistogram, *, raw_extremes: bool = True) -> None:
    """Equal counts in every bucket; with `raw_extremes`, also the exact recorded min and max.

    A decoded histogram knows its extremes only to bucket precision, so the raw check is for
    histograms built in this process.
    """
    assert got.get_total_count() == want.get_total_count()
    if raw_extremes:
        assert (got.min_value, got.max_value) == (want.min_value, want.max_value)
    assert got.equals(want)


# -- the shape ---------------------------------------------------------------------------------------


def test_new_histogram_has_the_project_shape() -> None:
    hist = new_histogram()
    assert (hist.lowest_trackable_value, hist.highest_trackable_value, hist.significant_figures) == (
        LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    assert HIGHEST_US == 3_600 * 1_000_000
    assert counts_len() == hist.counts_len


# -- bucket_indices ----------------------------------------------------------------------------------


def test_bucket_indices_are_hdrhs_counts_index_at_edges_and_bucket_boundaries() -> None:
    hist = new_histogram()
    values = boundary_values()
    got = bucket_indices(np.array(values, dtype=np.int64)).tolist()
    assert got == [hist._counts_index_for(v) for v in values]


@pytest.mark.parametrize("seed", [1, 2])
def test_bucket_indices_are_hdrhs_counts_index_for_latency_shaped_values(seed: int) -> None:
    hist = new_histogram()
    values = lognormal_us(seed, 5_000)
    assert bucket_indices(values).tolist() == [hist._counts_index_for(int(v)) for v in values]


def test_value_table_gives_the_highest_equivalent_value_of_each_index() -> None:
    hist = new_histogram()
    table = value_table(hist)
    for v in boundary_values():
        assert table[hist._counts_index_for(v)] == hist.get_highest_equivalent_value(v), v


# -- Sparse.of: raw samples to counts ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sparse_of_equals_record_value_for_lognormal_latencies(seed: int) -> None:
    values = lognormal_us(seed, 20_000)  # above the size where a dense bincount is used
    sparse = Sparse.of(values)
    assert sparse is not None and sparse.clipped == 0
    assert_same(sparse.histogram(), one_by_one(values))


def test_sparse_of_equals_record_value_at_edges_and_bucket_boundaries() -> None:
    values = boundary_values()
    sparse = Sparse.of(np.array(values, dtype=np.int64))
    assert sparse is not None
    assert_same(sparse.histogram(), one_by_one(values))


@pytest.mark.parametrize("value", [0, 1, 2047, 2048, 4095, 4096, HIGHEST_US])
def test_a_single_edge_value_lands_in_the_same_bucket_as_record_value(value: int) -> None:
    sparse = Sparse.of(np.array([value], dtype=np.int64))
    assert sparse is not None
    hist = sparse.histogram()
    assert_same(hist, one_by_one([value]))
    assert hist.get_count_at_value(value) == 1


def test_small_and_large_inputs_give_the_same_counts() -> None:
    values = lognormal_us(4, 9_000)
    big = Sparse.of(values)
    parts = merge([Sparse.of(values[i:i + 1_000]) for i in range(0, values.size, 1_000)])
    assert big == parts


def test_sparse_of_nothing_is_none() -> None:
    assert Sparse.of(np.array([], dtype=np.int64)) is None


def test_sparse_keeps_the_raw_min_and_max_and_the_total() -> None:
    sparse = Sparse.of(np.array([12_345, 7, 99_999_999], dtype=np.int64))
    assert sparse is not None
    assert (sparse.total, sparse.min, sparse.max) == (3, 7, 99_999_999)


def test_values_above_the_range_are_clipped_to_the_highest_value_and_counted() -> None:
    sparse = Sparse.of(np.array([5, HIGHEST_US + 1, 10 * HIGHEST_US, 2**40], dtype=np.int64))
    assert sparse is not None
    assert (sparse.clipped, sparse.total) == (3, 4), "a clipped sample is still a sample"
    assert_same(sparse.histogram(), one_by_one([5, HIGHEST_US, HIGHEST_US, HIGHEST_US]))
    assert sparse.max == HIGHEST_US


def test_negative_values_are_clipped_to_zero_and_counted() -> None:
    sparse = Sparse.of(np.array([-1, -1_000_000, 7], dtype=np.int64))
    assert sparse is not None
    assert sparse.clipped == 2
    hist = sparse.histogram()
    assert_same(hist, one_by_one([0, 0, 7]))
    assert hist.get_count_at_value(0) == 2


def test_sparse_survives_pickling_as_bytes() -> None:
    sparse = Sparse.of(lognormal_us(5, 1_000))
    assert pickle.loads(pickle.dumps(sparse)) == sparse
    assert isinstance(sparse.index, bytes) and isinstance(sparse.count, bytes)


def test_sparse_indices_are_ascending_and_counts_add_up_to_the_total() -> None:
    sparse = Sparse.of(lognormal_us(6, 3_000))
    assert sparse is not None
    idx, cnt = sparse.arrays()
    assert (np.diff(idx) > 0).all()
    assert int(cnt.sum()) == sparse.total == 3_000


# -- Sparse <-> HdrHistogram -------------------------------------------------------------------------


def test_add_to_adds_onto_what_the_histogram_already_holds() -> None:
    first, second = lognormal_us(4, 3_000), lognormal_us(5, 3_000)
    hist = one_by_one(first)
    Sparse.of(second).add_to(hist)  # type: ignore[union-attr]
    assert_same(hist, one_by_one(np.concatenate([first, second])))


def test_of_histogram_and_back_is_the_same_histogram() -> None:
    hist = one_by_one(lognormal_us(7, 2_000))
    sparse = Sparse.of_histogram(hist)
    assert sparse is not None
    assert_same(sparse.histogram(), hist)


def test_of_an_empty_histogram_is_none() -> None:
    assert Sparse.of_histogram(new_histogram()) is None


# -- merge, add, reset -------------------------------------------------------------------------------


def test_merging_two_process_shards_equals_one_histogram_of_all_values() -> None:
    values = lognormal_us(10, 10_000)
    # two generator processes take alternate arrivals and ship sparse counts
    merged = merge([Sparse.of(values[0::2]), Sparse.of(values[1::2])])
    assert merged is not None
    everything = one_by_one(values)
    assert_same(merged.histogram(), everything)
    assert stats(merged.histogram()) == stats(everything)


def test_merge_adds_the_clipped_counts() -> None:
    a = Sparse.of(np.array([HIGHEST_US + 1, 5], dtype=np.int64))
    b = Sparse.of(np.array([-3], dtype=np.int64))
    merged = merge([a, b])
    assert merged is not None
    assert (merged.clipped, merged.total) == (2, 3)


def test_merge_skips_missing_parts() -> None:
    only = Sparse.of(np.array([10, 20], dtype=np.int64))
    assert merge([None, only, None]) == only
    assert merge([None, None]) is None
    assert merge([]) is None


def test_add_sums_exactly_and_keeps_the_raw_extremes() -> None:
    a, b = lognormal_us(11, 2_000), lognormal_us(12, 2_000)
    into = one_by_one(a)
    add(into, one_by_one(b))
    assert_same(into, one_by_one(np.concatenate([a, b])))


def test_add_of_an_empty_histogram_changes_nothing() -> None:
    into = one_by_one([100, 200])
    add(into, new_histogram())
    assert_same(into, one_by_one([100, 200]))


def test_reset_empties_a_histogram_in_place() -> None:
    hist = one_by_one(lognormal_us(13, 1_000))
    reset(hist)
    assert hist.get_total_count() == 0
    assert (hist.min_value, hist.max_value) == (sys.maxsize, 0)
    assert hist.equals(new_histogram())
    hist.record_value(42)
    assert_same(hist, one_by_one([42]))


# -- reading: percentiles and stats ------------------------------------------------------------------


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


def test_stats_of_an_empty_histogram_is_only_a_zero_count() -> None:
    assert stats(new_histogram()) == {"count": 0}


def test_stats_has_count_min_mean_percentiles_and_max() -> None:
    block = stats(one_by_one(range(1, 1001)))
    assert list(block) == ["count", "min", "mean", *PERCENTILE_KEYS, "max"]
    assert PERCENTILE_KEYS == ("p50", "p90", "p95", "p99", "p99_9", "p99_99")
    assert (block["count"], block["min"], block["max"], block["mean"]) == (1000, 1, 1000, 500.5)
    assert (block["p50"], block["p90"], block["p99"], block["p99_9"]) == (500, 900, 990, 999)


# -- wire format -------------------------------------------------------------------------------------


def test_encode_decode_round_trip_preserves_the_histogram() -> None:
    hist = one_by_one(np.concatenate([lognormal_us(7, 4_000), np.array(boundary_values())]))
    text = encode(hist)
    assert isinstance(text, str) and text.isascii()
    assert_same(decode(text), hist, raw_extremes=False)
