"""Interval logs are decoded into exact percentiles: per interval, merged, and when capped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from report_fixtures import RunShape, make_run, new_hist, record_many

from reports.hdr import Counts, layout_for, parse_lines, read_hlog
from reports.loader import load_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), RunShape(duration_s=30, warmup_s=5, stall_every_s=10))


def _hdrh_intervals(path: Path) -> list[HdrHistogram]:
    _, entries = parse_lines(path.read_text())
    return [HdrHistogram.decode(payload.encode()) for _, _, payload in entries]


def test_fixture_batch_recording_equals_record_value() -> None:
    values = np.random.default_rng(3).lognormal(10, 1.5, 5000).astype(np.int64) + 1
    batch, single = new_hist(), new_hist()
    record_many(batch, values)
    for v in values:
        single.record_value(int(v))
    assert batch.encode() == single.encode()


def test_each_interval_percentile_equals_hdrhistogram(run_dir: Path) -> None:
    log = run_dir / "echo.response.hlog"
    series = read_hlog(log).series
    hists = _hdrh_intervals(log)
    assert len(series) == len(hists) == 35
    assert list(series.p50) == [h.get_value_at_percentile(50) for h in hists]
    assert list(series.p99) == [h.get_value_at_percentile(99) for h in hists]
    assert list(series.max) == [h.get_max_value() for h in hists]
    assert list(series.count) == [h.get_total_count() for h in hists]


def test_interval_start_times_are_seconds_since_run_start(run_dir: Path) -> None:
    series = read_hlog(run_dir / "echo.response.hlog").series
    assert list(series.t_s[:3]) == [0.0, 1.0, 2.0]
    assert series.t_s[-1] == 34.0


def test_merged_histogram_leaves_out_warmup_and_matches_summary(run_dir: Path) -> None:
    data = load_run(run_dir)
    summary = data.summary["ops"]["echo"]["response_time_us"]
    merged = data.logs["echo"].response.merged
    assert merged.total == summary["count"]
    got = merged.values_at([50, 90, 99, 99.9, 99.99])
    assert list(got) == [summary[k] for k in ("p50", "p90", "p99", "p99_9", "p99_99")]
    assert merged.max_value() == summary["max"]


def test_stall_shows_in_its_own_interval_not_smeared(run_dir: Path) -> None:
    series = read_hlog(run_dir / "echo.response.hlog").series
    stall_seconds = [9, 19, 29]
    assert all(series.max[t] > 900_000 for t in stall_seconds)
    calm = [t for t in range(35) if t not in stall_seconds]
    assert all(series.p99[t] < 100_000 for t in calm)


def test_capped_series_merges_neighbour_intervals_exactly(run_dir: Path) -> None:
    log = run_dir / "echo.response.hlog"
    capped = read_hlog(log, max_points=10).series
    hists = _hdrh_intervals(log)
    assert len(capped) == 9  # 35 intervals, 4 per point
    union = new_hist()
    for h in hists[8:12]:
        union.add(h)
    assert capped.t_s[2] == 8.0
    assert capped.p99[2] == union.get_value_at_percentile(99)
    assert capped.max[2] == union.get_max_value()


def test_relative_timestamps_use_the_start_time_header() -> None:
    text = "#[StartTime: 1795457700.000 (seconds since epoch), x]\n" \
           '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"\n' \
           "3.000,1.000,0.5,PAYLOAD\n"
    start, entries = parse_lines(text)
    assert start == 1795457700.0
    assert entries == [(3.0, 1.0, "PAYLOAD")]


def test_absolute_timestamps_are_made_relative_to_start_time() -> None:
    text = "#[StartTime: 1000000000.000 (seconds since epoch), x]\n1000000004.000,1.000,0.5,P\n"
    assert parse_lines(text)[1] == [(4.0, 1.0, "P")]


def test_logs_without_header_are_read_as_relative() -> None:
    assert parse_lines("Tag=a,2.000,1.000,0.5,P\n")[1] == [(2.0, 1.0, "P")]


def test_empty_log_gives_empty_series(tmp_path: Path) -> None:
    log = tmp_path / "x.response.hlog"
    log.write_text("#[Histogram log format version 1.2]\n")
    data = read_hlog(log)
    assert data.merged is None and len(data.series) == 0


def test_interval_straddling_the_end_of_warmup_is_kept(tmp_path: Path) -> None:
    hists = []
    lines = ["#[StartTime: 1795457700.000 (seconds since epoch), x]"]
    for t, value in [(0, 111), (1, 222), (2, 333)]:
        h = new_hist()
        h.record_value(value)
        hists.append(h)
        lines.append(f"{t}.000,1.000,0.0,{h.encode().decode()}")
    log = tmp_path / "k.response.hlog"
    log.write_text("\n".join(lines) + "\n")
    merged = read_hlog(log, skip_before_s=1.5).merged
    assert merged.total == 2  # [1, 2) straddles 1.5 and is kept; [0, 1) is warm-up
    assert list(merged.values_at([0.0, 100.0])) == [hists[1].get_max_value(), hists[2].get_max_value()]


def test_percentile_zero_is_the_lowest_equivalent_value_as_in_hdrhistogram() -> None:
    h = new_hist()
    record_many(h, np.array([123_456, 200_000, 300_000]))
    counts = Counts(layout_for(1, 3_600_000_000, 3), np.ctypeslib.as_array(h.counts).astype(np.int64))
    assert list(counts.values_at([0.0, 50.0, 100.0])) == [h.get_value_at_percentile(p) for p in (0.0, 50.0, 100.0)]
