"""Locust's master/worker mode as across machines: two workers started on their own, as remote ones.

`edabench locust` starts the master alone (`--workers 0 --expect-workers 2`); two `locust --worker`
processes are then started separately, pointed at the master's address, with nothing from the
command but the locustfile (the plan reaches them in Locust's messages). Each hosts a generator
that takes its share of one arrival schedule (worker i of 2: arrivals i, i+2, ...); the master
merges their HDR histograms exactly: the merged count is the sum of the workers' counts, and
together they cover the schedule exactly once.
"""

from __future__ import annotations

import os
from pathlib import Path

from hdrh.log import HistogramLogReader

from tests.integration.locust_run import EDABENCH, LOCUST, free_port, only_run, read, running

RATE = 100
WARMUP_S = 1
MEASURE_S = 3
SPEC = f"""name = "two-workers"
target = "echo"
duration_s = {MEASURE_S}
warmup_s = {WARMUP_S}
[rate]
rate = {RATE}
[[ops]]
name = "echo"
[target_options]
base_ms = 2
[slo]
check_generator = false
"""


def _hlog_count(path: Path) -> int:
    from harness.results.hdr import new_histogram

    reader = HistogramLogReader(str(path), new_histogram())
    total = 0
    while (hist := reader.get_next_interval_histogram()) is not None:
        total += hist.get_total_count()
    return total


def test_two_separately_started_workers_merge_exactly(tmp_path: Path) -> None:
    spec = tmp_path / "two-workers.toml"
    spec.write_text(SPEC)
    locustfile = tmp_path / "two_workers.py"  # what a remote machine would have: the locustfile only
    locustfile.write_text(f"from harness.locust.users import ScheduledOps\n\nEDABENCH = {str(spec)!r}\n")
    port = free_port()
    runs = tmp_path / "runs"
    master = [EDABENCH, "locust", str(locustfile), "--workers", "0", "--expect-workers", "2", "--master-bind-port",
              str(port), "--runs-dir", str(runs), "--no-report"]
    worker = [LOCUST, "-f", str(locustfile), "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDABENCH_")}
    with running(master, tmp_path / "master.log") as command, \
            running(worker, tmp_path / "worker-0.log", env), running(worker, tmp_path / "worker-1.log", env):
        command.wait(180)
    assert command.returncode == 0, (tmp_path / "master.log").read_text()

    run_dir = only_run(runs)
    summary = read(run_dir / "summary.json")
    processes = read(run_dir / "locust-processes.json")
    assert sorted(processes) == ["0", "1"] and processes["0"]["worker"] != processes["1"]["worker"]
    total = RATE * (WARMUP_S + MEASURE_S)
    for index, proc in processes.items():
        books = proc["books"]["echo"]
        assert books["scheduled"] == len(range(int(index), total, 2)), "worker i takes arrivals i, i+2, ..."
        assert proc["response_count"] == books["measured"]["ok"] + books["measured"]["timeout"] > 0
    block = summary["ops"]["echo"]
    merged = block["response_time_us"]["count"]
    assert merged == sum(p["response_count"] for p in processes.values()) == _hlog_count(run_dir / "echo.response.hlog")
    assert block["counts"]["scheduled"] == total and block["counts"]["ok"] == total
    assert summary["processes"] == 2 and summary["books_balanced"]
    assert summary["locust"]["echo"]["count"] == merged, "Locust's own stats saw every measured op"
