"""A Locust master with two local workers: the workers' HDR histograms merge exactly on the master.

Each worker ships its own totals with its books (locust-processes.json); merged here independently,
they must give the summary's counts and percentiles bit for bit, and the hlog intervals must add up
to the same count. Locust's own request count must match ours (its last stats are flushed first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from hdrh.log import HistogramLogReader

from harness.locust.coordinator import LocustOptions, LocustOutcome, execute
from harness.loop import run
from harness.recorder import decode, new_histogram, stats

RATE = 200
WARMUP_S = 1
MEASURE_S = 3
USERS = 4


def _run(tmp_path: Path) -> LocustOutcome:
    opts = LocustOptions(workload="echo", workers=2, users=USERS, spawn_rate=100, duration_s=MEASURE_S,
                         warmup_s=WARMUP_S, runs_root=tmp_path, report=False)
    return run(execute(opts))


def _hlog_count(path: Path) -> int:
    reader = HistogramLogReader(str(path), new_histogram())
    total = 0
    while (hist := reader.get_next_interval_histogram()) is not None:
        total += hist.get_total_count()
    return total


def test_master_merges_two_workers_exactly(tmp_path: Path) -> None:
    outcome = _run(tmp_path)
    assert outcome.ok, outcome.summaries
    (run_dir,), (summary,) = outcome.run_dirs, outcome.summaries
    assert summary["processes"] == 2 and summary["generator"] == "locust" and not summary["closed_loop"]
    procs: dict[str, Any] = orjson.loads((run_dir / "locust-processes.json").read_bytes())
    assert sorted(procs) == ["0", "1"]

    merged = new_histogram()
    measured_ok = scheduled = 0
    for proc in procs.values():
        worker_hist = decode(proc["totals"]["echo"]["response"])
        assert worker_hist.get_total_count() > 0, "both workers ran users"
        merged.add(worker_hist)
        measured_ok += proc["books"]["echo"]["measured"]["ok"]
        scheduled += proc["books"]["echo"]["scheduled"]
        assert proc["arrivals"] == proc["books"]["echo"]["scheduled"]

    block = summary["ops"]["echo"]
    assert stats(merged) == block["response_time_us"]
    assert block["counts"]["measured"]["ok"] == measured_ok == merged.get_total_count()
    assert block["counts"]["scheduled"] == scheduled
    assert abs(block["counts"]["measured"]["scheduled"] - RATE * MEASURE_S) <= USERS
    assert block["counts"]["ok"] == block["counts"]["scheduled"], block["counts"]
    assert _hlog_count(run_dir / "echo.response.hlog") == merged.get_total_count()
    # Locust's own count covers the whole test (warm-up included), as ours does before the warm-up cut
    assert summary["locust"]["echo"]["count"] == block["counts"]["ok"] + block["counts"]["error"]
    run_json = orjson.loads((run_dir / "run.json").read_bytes())
    assert run_json["ended_at"] and run_json["config"]["locust"]["processes"] == 2
