"""Smoke test of the HTTP generator benchmark: a tiny version runs end to end and yields its ratios.

Numbers are not asserted (they live in docs/benchmarks.md, measured by `python -m benchmarks.http_generator`);
only that every tool was measured against the same echo server and the ratios are computed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.http_generator import Config, bench, render
from harness.loop import run


def test_http_generator_benchmark_runs_and_computes_ratios(tmp_path: Path) -> None:
    result = run(bench(Config.tiny(), work=tmp_path, log=lambda _msg: None))
    (round0,) = result["rounds"]
    locust = round0["locust"]
    assert "skipped" not in locust, locust
    assert locust["rate"] > 0 and locust["cpu_us_per_request"] > 0 and locust["server_cpu_us_per_request"] > 0
    (eda,) = round0["edabench"].values()
    run_ = eda["run"]
    assert run_ is not None and run_["ok_rate"] > 0 and run_["cpu_us_per_op"] > 0
    assert run_["extra"]["server_cpu_us_per_request"] > 0
    ratios = eda["ratios"]
    assert ratios["rate_vs_locust"] > 0 and ratios["cpu_per_request_vs_locust"] > 0
    # wrk is Debian's package, installed by the nox tests session: the anchor is always measured
    assert shutil.which("wrk"), "wrk is missing: `nox -s tests` installs it (apt-get install wrk)"
    assert round0["wrk"]["rate"] > 0 and round0["wrk"]["cpu_us_per_request"] > 0
    assert ratios["rate_vs_wrk"] > 0 and ratios["cpu_per_request_vs_wrk"] > 0
    assert "CPU/req vs Locust" in render(result)
