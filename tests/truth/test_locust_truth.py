"""Truth test of the Locust front end: its numbers are what every request really experienced.

The echo service (100 ms base) freezes 1 s every 5 s and logs each request's op id, intended start
(sent by the driver), arrival and answer. Driven through `edabench locust` (a master and a worker
hosting the generator) at 50 req/s for 10 measured seconds:

* edabench's HDR percentiles match the per-request ground truth recorded in the same run (a loaded
  machine slows the service and its truth alike). What the truth leaves out is the client's turn to
  read an answer: at the end of a stall the whole backlog is answered at once; at 50 req/s that
  queue stays well inside the 5% allowed, also on a busy machine;
* Locust's own statistics, fed from the same interval histograms, show the same response times
  from the intended start, within Locust's rounding (two significant digits);
* for contrast, ordinary closed-loop Locust users (`workloads/locustfiles/echo_closed.py`, plain
  Locust) against the same service wait out each stall instead of sending: their p90 stays near
  the base latency, far below the truth, and they send fewer requests than they aim at.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from harness.results.hdr import Sparse, stats
from targets.echo.driver import TRUTH_FILE
from targets.echo.server import read_truth
from tests.integration.locust_run import LOCUST, REPO, echo_server, edabench, only_run, read, running

RATE = 50
WARMUP_S = 1
MEASURE_S = 10  # two whole stall periods
BASE_MS = 100
TOLERANCE = 0.05
HDR_BUCKET = 1.002
KEYS = ("p50", "p90", "p99", "p99_9")
SPEC = f"""name = "locust-truth"
target = "echo"
duration_s = {MEASURE_S}
warmup_s = {WARMUP_S}
timeout_s = 5
[rate]
rate = {RATE}
[[ops]]
name = "echo"
[target_options]
base_ms = {BASE_MS}
stall_every_s = 5
stall_for_s = 1
truth_log = true
[slo]
check_generator = false
"""


def _close(measured: float, truth: float, tolerance: float = TOLERANCE) -> bool:
    return abs(measured - truth) <= truth * tolerance or truth / HDR_BUCKET <= measured <= truth * HDR_BUCKET


def _as_locust_sees_it(locust_ms: float, ours_us: float) -> bool:
    """Locust keeps response times to two significant digits (1 ms steps below 100 ms, 10 ms below
    1 s, 100 ms below 10 s) and its percentile is the bucket holding the next sample up; in a stall's
    sparse tail one sample is a few percent (20 ms apart here): within 5% and one of its steps."""
    ms = ours_us / 1000
    step = 1.0 if ms < 100 else 10.0 if ms < 1000 else 100.0
    return abs(locust_ms - ms) <= TOLERANCE * ms + step


def _truth(run_dir: Path) -> dict[str, Any]:
    records = np.array(read_truth(str(run_dir / TRUTH_FILE)), dtype=np.int64)
    ids, intended, answer = records[:, 0], records[:, 1], records[:, 3]
    measured = ids >= RATE * WARMUP_S  # op ids are the schedule's index: the first ones are the warm-up
    part = Sparse.of((answer[measured] - intended[measured]) // 1000)
    assert part is not None
    return stats(part.histogram())


def _closed_loop_locust(tmp_path: Path) -> dict[str, str]:
    """Plain Locust's own aggregated row, closed-loop users against the same echo service."""
    with echo_server(tmp_path / "echo.log", "--base-ms", str(BASE_MS), "--stall-every-s", "5", "--stall-for-s", "1"
                     ) as url:
        prefix = tmp_path / "closed"
        locust = [LOCUST, "-f", str(REPO / "workloads/locustfiles/echo_closed.py"), "--headless", "-u", "10", "-r",
                  "10", "-t", f"{WARMUP_S + MEASURE_S}s", "--host", url, "--csv", str(prefix),
                  "--only-summary"]
        with running(locust, tmp_path / "closed.log") as proc:
            proc.wait(120)
    with (tmp_path / "closed_stats.csv").open() as fh:
        return next(row for row in csv.DictReader(fh) if row["Name"] == "Aggregated")


def test_locust_front_end_reports_the_truth_where_closed_loop_users_under_report(tmp_path: Path) -> None:
    spec = tmp_path / "locust-truth.toml"
    spec.write_text(SPEC)
    runs = tmp_path / "runs"
    _, out = edabench(["locust", str(spec), "--workers", "1", "--runs-dir", str(runs), "--no-report"],
                      tmp_path / "open.log", timeout_s=240)
    run_dir = only_run(runs)
    summary = read(run_dir / "summary.json")
    assert summary["books_balanced"], out
    truth = _truth(run_dir)
    ours = summary["ops"]["echo"]["response_time_us"]
    theirs = summary["locust"]["echo"]
    closed = _closed_loop_locust(tmp_path)
    print(f"\ntruth (ms) { {k: truth[k] / 1000 for k in KEYS} }\nedabench HDR { {k: ours[k] / 1000 for k in KEYS} }"
          f"\nLocust's own stats, edabench locust { {k: theirs[f'{k}_ms'] for k in KEYS} }"
          f"\nplain Locust, closed-loop users: p90 {closed['90%']} ms, {closed['Request Count']} requests "
          f"of {RATE * (WARMUP_S + MEASURE_S)} aimed at")

    counts = summary["ops"]["echo"]["counts"]
    assert counts["scheduled"] == counts["ok"] == RATE * (WARMUP_S + MEASURE_S)
    assert ours["count"] == truth["count"] == RATE * MEASURE_S, "every measured op is in the truth and the histogram"
    for key in KEYS:
        assert _close(ours[key], truth[key]), f"{key}: edabench {ours[key]} us, truth {truth[key]} us"
        assert _as_locust_sees_it(theirs[f"{key}_ms"], ours[key]), f"{key}: Locust {theirs[key + '_ms']} ms"
    assert theirs["count"] == ours["count"], "Locust's stats count the measured ops, as edabench's"

    # the contrast: ordinary Locust users hide the stalls below their 90th percentile and send less
    assert float(closed["90%"]) < truth["p90"] / 1000 / 2, closed
    assert int(closed["Request Count"]) < 0.9 * RATE * (WARMUP_S + MEASURE_S), closed
