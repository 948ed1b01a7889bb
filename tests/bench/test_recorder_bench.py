"""Recorder cost on the hot path, as a ratio to `HdrHistogram.record_value` measured in the same run.

The load generator records an op with two `Recorder.add` calls (response and service time);
without batching it would call `record_value` twice. Every 50 ms the buffers are folded into
dense counts with numpy, and once a second `take` hands them over as sparse counts. Run with
`pytest tests/bench --benchmark-enable`: the ratios are in
each benchmark's `extra_info` (and printed). The default suite runs every test once, unmeasured;
nothing here asserts on time, only on what was recorded.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from harness.recorder import Recorder
from harness.results.hdr import new_histogram

OPS = 10_000  # ops per measured round
VALUES = [int(v) for v in np.random.default_rng(1).lognormal(np.log(20_000), 1.5, OPS).clip(1, 3_600_000_000)]

#: seconds per round of each anchor, filled by the anchor benchmarks that run first in this module
ANCHORS: dict[str, float] = {}


def median_s(benchmark: Any) -> float | None:
    stats = getattr(benchmark, "stats", None)
    return stats.stats.median if benchmark.enabled and stats is not None else None


def note_ratio(benchmark: Any, anchor: str, label: str) -> None:
    """Record this benchmark's cost per op and its ratio to the anchor in extra_info, and print them."""
    median = median_s(benchmark)
    if median is None:
        return
    benchmark.extra_info["ns_per_op"] = round(median / OPS * 1e9, 2)
    base = ANCHORS.get(anchor)
    if base:
        benchmark.extra_info[f"anchor_{anchor}_ns_per_op"] = round(base / OPS * 1e9, 2)
        benchmark.extra_info[f"ratio_to_{anchor}"] = round(median / base, 4)
        print(f"\n{label}: {median / OPS * 1e9:.1f} ns/op, {median / base:.3f} x {anchor}")


def record_value_twice(hist: Any) -> Any:
    record = hist.record_value
    for v in VALUES:
        record(v)
        record(v)
    return hist


def add_twice(response: Recorder, service: Recorder) -> tuple[Recorder, Recorder]:
    r_add, s_add = response.add, service.add
    for v in VALUES:
        r_add(v)
        s_add(v)
    return response, service


def record_value_each(hist: Any) -> Any:
    record = hist.record_value
    for v in VALUES:
        record(v)
    return hist


def filled_buffer() -> tuple[tuple[Recorder, Any], dict[str, Any]]:
    buf = Recorder()
    for v in VALUES:
        buf.add(v)
    return (buf, new_histogram()), {}


def drain(buf: Recorder, hist: Any) -> Any:
    part = buf.take()
    assert part is not None
    part.add_to(hist)
    return hist


@pytest.mark.benchmark(group="recorder: record one op (response + service)")
def test_anchor_record_value_twice_per_op(benchmark: Any) -> None:
    hist = benchmark.pedantic(record_value_twice, setup=lambda: ((new_histogram(),), {}), rounds=20,
                              warmup_rounds=1)
    assert hist.get_total_count() == 2 * OPS
    if (median := median_s(benchmark)) is not None:
        ANCHORS["record_value"] = median
        benchmark.extra_info["ns_per_op"] = round(median / OPS * 1e9, 2)


@pytest.mark.benchmark(group="recorder: record one op (response + service)")
def test_recorder_add_twice_per_op(benchmark: Any) -> None:
    response, service = benchmark.pedantic(add_twice, setup=lambda: ((Recorder(), Recorder()), {}),
                                           rounds=50, warmup_rounds=1)
    assert len(response) == len(service) == OPS
    note_ratio(benchmark, "record_value", "Recorder.add x2")


@pytest.mark.benchmark(group="recorder: fold 10,000 samples into a histogram")
def test_anchor_record_value_for_10k_samples(benchmark: Any) -> None:
    hist = benchmark.pedantic(record_value_each, setup=lambda: ((new_histogram(),), {}), rounds=20,
                              warmup_rounds=1)
    assert hist.get_total_count() == OPS
    if (median := median_s(benchmark)) is not None:
        ANCHORS["record_value_10k"] = median
        benchmark.extra_info["ns_per_op"] = round(median / OPS * 1e9, 2)


@pytest.mark.benchmark(group="recorder: fold 10,000 samples into a histogram")
def test_fold_and_take_for_10k_samples(benchmark: Any) -> None:
    hist = benchmark.pedantic(drain, setup=filled_buffer, rounds=50, warmup_rounds=1)
    assert hist.get_total_count() == OPS
    assert hist.equals(record_value_each(new_histogram()))
    note_ratio(benchmark, "record_value_10k", "Recorder.take (10k)")
