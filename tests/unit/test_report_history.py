"""History: every run in a folder, in start order, charted for p99 and throughput."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from report_fixtures import RunShape, make_run, table_rows

from reports.build import build_report
from reports.history import history

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history")
    for day, scale in [(3, 1.0), (0, 1.0), (2, 1.4), (1, 1.1), (4, 0.9)]:  # written out of order
        make_run(root, RunShape(duration_s=3, warmup_s=0, stall_every_s=0, scale_us=scale, seed=day,
                                started_at=T0 + timedelta(days=day), git_sha=f"sha{day}"))
    (root / "notes").mkdir()  # not a run: ignored
    return root


def test_history_lists_every_run_in_start_order(folder: Path) -> None:
    points = history(folder, with_charts=False).points
    assert [p.git_sha for p in points] == ["sha0", "sha1", "sha2", "sha3", "sha4"]


def test_history_point_carries_overall_p99_and_rate(folder: Path) -> None:
    p = history(folder, with_charts=False).points[2]
    assert p.p99_us > 20_000 * 1.4
    assert p.achieved_rate == pytest.approx(200, rel=0.01)


@pytest.mark.parametrize("chart", ["p99", "throughput"])
def test_history_chart_plots_one_marker_per_run(folder: Path, chart: str) -> None:
    svg = history(folder).charts[chart]
    series = re.search(r'<g id="c\d+-series-0">(.*?)</g>\s*<g id=', svg, re.S)
    assert series and series.group(1).count("<use ") == 5


def test_history_only_report_tables_all_runs(folder: Path) -> None:
    out = build_report([], history_dir=folder)
    assert out == folder / "history.html"
    page = out.read_text()
    assert "History: 5 runs" in page
    assert len(table_rows(page, "history")) == 5


def test_runs_nested_one_level_down_are_found(tmp_path: Path) -> None:
    make_run(tmp_path / "job-1", RunShape(duration_s=2, warmup_s=0))
    make_run(tmp_path / "job-2", RunShape(duration_s=2, warmup_s=0))
    assert len(history(tmp_path, with_charts=False).points) == 2
