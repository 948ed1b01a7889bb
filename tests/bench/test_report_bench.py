"""Report build time for a 10-minute run at 10,000 ops/s over three op kinds (610 intervals each).

Fabricating the run is setup, not measured. Run with `pytest tests/bench/test_report_bench.py
--benchmark-enable`; the default suite runs it once, unmeasured, as a smoke test. The figure
quoted in docs/reports.md comes from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from report_fixtures import RunShape, make_run

from reports.build import build_report
from reports.loader import load_run


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    shape = RunShape(kinds=("deposit", "withdraw", "balance"), rate=10_000 / 3, duration_s=600, warmup_s=10,
                     stall_every_s=60, errors_per_stall=40, timeouts_per_stall=20)
    return make_run(tmp_path_factory.mktemp("long"), shape)


def test_build_report_of_a_ten_minute_10k_run(benchmark, long_run: Path, tmp_path: Path) -> None:
    out = benchmark.pedantic(build_report, args=([long_run], tmp_path / "report.html"), rounds=3, iterations=1)
    page = out.read_text()
    assert out.stat().st_size < 5_000_000
    assert "Latency by percentile: balance" in page
    assert "Response time distribution: balance" in page
    assert "Response time over time per kind: p99 and max per interval" in page


def test_load_run_of_a_ten_minute_10k_run(benchmark, long_run: Path) -> None:
    data = benchmark.pedantic(load_run, args=(long_run,), rounds=3, iterations=1)
    assert len(data.logs["deposit"].response.series) == 610
