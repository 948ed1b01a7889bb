"""The response-time distribution: samples per log-spaced latency bucket, exact from the HDR histograms."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from report_fixtures import RunShape, make_run, new_hist, record_many

from reports import charts
from reports.build import build_report
from reports.hdr import Counts, layout_for, log_edges
from reports.loader import load_run


def _counts(values: list[int] | np.ndarray) -> Counts:
    h = new_hist()
    record_many(h, np.asarray(values, dtype=np.int64))
    return Counts(layout_for(1, 3_600_000_000, 3), np.ctypeslib.as_array(h.counts).astype(np.int64))


def test_bucket_edges_fall_on_powers_of_ten() -> None:
    edges = log_edges(1_500, 900_000)
    decades = [e for e in edges if float(np.log10(e)).is_integer()]
    assert decades == [10_000.0, 100_000.0, 1_000_000.0]


def test_bucket_edges_cover_the_lowest_and_highest_value() -> None:
    edges = log_edges(1_500, 900_000)
    assert edges[0] <= 1_500 < edges[1]
    assert edges[-2] <= 900_000 < edges[-1]


def test_bucket_edges_are_evenly_spaced_on_a_log_scale() -> None:
    ratios = np.diff(np.log10(log_edges(1_500, 900_000)))
    assert np.allclose(ratios, ratios[0])


def test_a_wide_range_gets_fewer_buckets_per_decade() -> None:
    per_decade = [round(1 / float(np.diff(np.log10(log_edges(1_000, hi)))[0])) for hi in (10_000, 10_000_000)]
    assert per_decade == [50, 10]


def test_samples_are_counted_in_the_bucket_that_holds_them() -> None:
    counts = _counts([1_000] * 5 + [1_500] * 3 + [20_000] * 7 + [99_999] * 2)
    edges = np.array([1_000.0, 10_000.0, 100_000.0, 1_000_000.0])
    assert list(counts.binned(edges)) == [8, 9, 0]


def test_bucket_counts_add_up_to_every_sample() -> None:
    values = np.random.default_rng(7).lognormal(10, 1.2, 50_000).astype(np.int64) + 1
    counts = _counts(values)
    assert counts.binned(log_edges(counts.min_value(), counts.max_value())).sum() == 50_000


def test_lowest_value_is_hdrhistograms_min() -> None:
    h = new_hist()
    record_many(h, np.array([12_345, 67_890]))
    counts = Counts(layout_for(1, 3_600_000_000, 3), np.ctypeslib.as_array(h.counts).astype(np.int64))
    assert counts.min_value() == h.get_min_value()


def test_distribution_chart_draws_response_bars_and_service_outline() -> None:
    resp, serv = _counts([20_000, 21_000, 500_000]), _counts([19_000, 20_500, 499_000])
    svg = charts.distribution_svg([charts.Curve("response time", resp), charts.Curve("service time", serv)])
    assert len(re.findall(r'<g id="c\d+-series-\d+">\s*<path', svg)) == 2


def test_distribution_chart_marks_the_response_times_p50_and_p99() -> None:
    counts = _counts(np.r_[np.full(98, 20_000), np.full(2, 900_000)])
    fig = charts.distribution_figure([charts.Curve("response time", counts)])
    try:
        labels = [t.get_text() for t in fig.legends[0].texts]
    finally:
        plt.close(fig)
    assert labels == ["response time", "p50 20 ms", "p99 900 ms"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run = make_run(tmp_path_factory.mktemp("runs"), RunShape(kinds=("deposit", "withdraw")))
    return run, build_report([run]).read_text()


@pytest.mark.parametrize("caption", [
    "Response time distribution (all kinds): samples per latency bucket",
    "Response time distribution: deposit",
    "Response time distribution: withdraw",
])
def test_report_has_a_distribution_overall_and_per_kind(run: tuple[Path, str], caption: str) -> None:
    m = re.search(r'data-chart="' + re.escape(caption) + r'">(.*?)</figure>', run[1], re.S)
    assert m and re.search(r'<g id="c\d+-series-0">\s*<path', m.group(1))


def test_overall_distribution_counts_every_measured_sample(run: tuple[Path, str]) -> None:
    data = load_run(run[0])
    merged = data.merged("response")
    assert merged is not None
    binned = merged.binned(log_edges(merged.min_value(), merged.max_value()))
    assert binned.sum() == data.summary["overall"]["response_time_us"]["count"]


def test_a_tight_body_gets_at_least_six_buckets_between_p25_and_p75() -> None:
    edges = log_edges(18_000, 1_030_000, body_us=(20_000.0, 22_000.0))
    assert np.count_nonzero((edges > 20_000) & (edges < 22_000)) >= 5  # five inner edges: six buckets


def test_buckets_are_never_finer_than_two_hundred_per_decade() -> None:
    edges = log_edges(18_000, 1_030_000, body_us=(20_500.0, 20_600.0))
    assert float(np.diff(np.log10(edges))[0]) == pytest.approx(1 / 200)


def test_a_wide_body_keeps_the_coarse_buckets() -> None:
    assert np.array_equal(log_edges(1_000, 1_000_000, body_us=(5_000.0, 50_000.0)), log_edges(1_000, 1_000_000))
