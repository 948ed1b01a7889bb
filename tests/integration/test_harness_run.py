"""Whole runs against the real echo server (a subprocess over HTTP): the run directory, Ctrl-C, two processes.

Counts are asserted exactly (the schedule is a pure function of the spec); latencies only where the
echo server's fixed delay makes them a hard lower bound. Nothing depends on how long a run took.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from hdrh.log import HistogramLogReader

from harness.engine.runner import RunOptions, RunOutcome, execute
from harness.loop import run
from harness.plan import make_plan
from harness.results.gate import INTERRUPTED, UNTRUSTED, evaluate_slos
from harness.results.hdr import new_histogram
from harness.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]


def echo_spec(name: str, **overrides: Any) -> Any:
    data: dict[str, Any] = {
        "name": name,
        "target": "echo",
        "timeout_s": 5,
        "processes": 1,
        "ops": [{"name": "echo"}],
        "target_options": {"transport": "http", "base_ms": 5},
    }
    data.update(overrides)
    return parse_spec(data)


def execute_spec(tmp_path: Path, spec: Any) -> RunOutcome:
    return run(execute(make_plan(spec), RunOptions(runs_root=tmp_path, command=["test"])))


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def hlog_counts(path: Path) -> list[int]:
    """Total count of every interval histogram in an HdrHistogram log."""
    reader = HistogramLogReader(str(path), new_histogram())
    counts = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        counts.append(hist.get_total_count())
    reader.close()
    return counts


# -- one run, its directory ------------------------------------------------------------------------------

RATE, WARMUP_S, DURATION_S, BASE_MS = 100, 1, 3, 300


@pytest.fixture(scope="module")
def http_run(tmp_path_factory: pytest.TempPathFactory) -> RunOutcome:
    # a 300 ms echo puts the end of the drain mid-second, away from an interval boundary
    spec = echo_spec("harness-http", rate={"rate": RATE}, warmup_s=WARMUP_S, duration_s=DURATION_S,
                     target_options={"transport": "http", "base_ms": BASE_MS})
    return execute_spec(tmp_path_factory.mktemp("runs"), spec)


def test_the_run_directory_holds_every_result_file(http_run: RunOutcome) -> None:
    names = {p.name for p in http_run.run_dir.iterdir()}
    assert {"run.json", "summary.json", "echo.response.hlog", "echo.service.hlog", "schedule-lag.hlog",
            "timeseries.jsonl", "resources.jsonl", "logs"} <= names
    assert (http_run.run_dir / "logs" / "echo.log").exists()


def test_run_json_describes_the_run(http_run: RunOutcome) -> None:
    meta = read_json(http_run.run_dir / "run.json")
    assert meta["schema"] == "edabench.run/1"
    assert meta["run_id"] == http_run.run_dir.name and meta["run_id"].endswith("-harness-http")
    assert meta["spec"]["target"] == "echo" and meta["spec"]["rate"]["rate"] == RATE
    assert meta["config"]["processes"] == 1
    assert (meta["config"]["duration_s"], meta["config"]["warmup_s"]) == (DURATION_S, WARMUP_S)
    assert meta["interrupted"] is False
    assert meta["started_at"] < meta["ended_at"]
    assert meta["command"] == ["test"]


def test_summary_counts_every_scheduled_op_once(http_run: RunOutcome) -> None:
    summary = read_json(http_run.run_dir / "summary.json")
    assert summary == http_run.summary
    assert (summary["schema"], summary["interrupted"], summary["books_balanced"]) == (
        "edabench.summary/2", False, True)
    counts = summary["ops"]["echo"]["counts"]
    assert counts["scheduled"] == RATE * (WARMUP_S + DURATION_S)
    assert counts["ok"] == counts["scheduled"]
    assert counts["warmup"] == RATE * WARMUP_S
    assert counts["measured"]["scheduled"] == RATE * DURATION_S
    assert summary["verify"]["problems"] == []
    assert http_run.ok


def test_latency_statistics_cover_only_measured_ops_and_include_the_echo_delay(http_run: RunOutcome) -> None:
    block = http_run.summary["ops"]["echo"]
    rt, st = block["response_time_us"], block["service_time_us"]
    assert rt["count"] == st["count"] == RATE * DURATION_S
    assert rt["p50"] >= BASE_MS * 1000 * 0.99, "answers waited at least the echo's delay"
    assert rt["p50"] >= st["p50"]
    assert http_run.summary["overall"]["response_time_us"] == rt


def test_the_minimum_response_time_is_at_least_the_echo_delay(http_run: RunOutcome) -> None:
    rt = http_run.summary["ops"]["echo"]["response_time_us"]
    assert rt["min"] >= BASE_MS * 1000 * 0.99


def test_response_hlog_intervals_add_up_to_the_summary_count(http_run: RunOutcome) -> None:
    per_interval = hlog_counts(http_run.run_dir / "echo.response.hlog")
    assert sum(per_interval) == http_run.summary["ops"]["echo"]["response_time_us"]["count"]
    assert sum(hlog_counts(http_run.run_dir / "echo.service.hlog")) == sum(per_interval)
    assert len(per_interval) >= WARMUP_S + DURATION_S


def test_schedule_lag_hlog_has_a_sample_for_every_sent_op(http_run: RunOutcome) -> None:
    assert sum(hlog_counts(http_run.run_dir / "schedule-lag.hlog")) == RATE * (WARMUP_S + DURATION_S)


def test_timeseries_has_one_line_per_second_in_order(http_run: RunOutcome) -> None:
    lines = [orjson.loads(x) for x in (http_run.run_dir / "timeseries.jsonl").read_bytes().splitlines()]
    assert [line["t"] for line in lines] == list(range(len(lines)))
    assert len(lines) >= WARMUP_S + DURATION_S
    assert [line["warmup"] for line in lines[:2]] == [True, False]
    assert all(line["target_rate"] == RATE for line in lines[: WARMUP_S + DURATION_S])


def test_timeseries_counts_add_up_to_the_books(http_run: RunOutcome) -> None:
    lines = [orjson.loads(x) for x in (http_run.run_dir / "timeseries.jsonl").read_bytes().splitlines()]
    counts = http_run.summary["ops"]["echo"]["counts"]
    for key in ("scheduled", "ok", "error", "timeout", "not_sent"):
        assert sum(line.get(key, 0) for line in lines) == counts[key], key
    assert sum(line["ops"]["echo"]["count"] for line in lines if "echo" in line["ops"]) == RATE * DURATION_S


# -- several generator processes -------------------------------------------------------------------------


def test_two_processes_merge_into_exactly_the_scheduled_count(tmp_path: Path) -> None:
    outcome = execute_spec(tmp_path, echo_spec("harness-2p", processes=2, rate={"rate": 100}, duration_s=2))
    summary = outcome.summary
    counts = summary["ops"]["echo"]["counts"]
    assert summary["processes"] == 2
    assert summary["books_balanced"] is True
    assert counts["scheduled"] == 200
    assert counts["ok"] == 200
    assert summary["ops"]["echo"]["response_time_us"]["count"] == 200
    assert sum(hlog_counts(outcome.run_dir / "echo.response.hlog")) == 200
    assert read_json(outcome.run_dir / "run.json")["config"]["processes"] == 2


# -- Ctrl-C -----------------------------------------------------------------------------------------------


def echo_servers(pid: int) -> list[psutil.Process]:
    """The echo servers among the harness's descendants; short-lived helpers that exit (or are
    not yet reaped) while we look are not among them."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            if "targets.echo.server" in " ".join(child.cmdline()):
                found.append(child)
    return found


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _measured_seconds(runs: Path) -> int:
    lines = [orjson.loads(x) for d in runs.glob("*") for x in (d / "timeseries.jsonl").read_bytes().splitlines()
             if (d / "timeseries.jsonl").exists()]
    return sum(1 for line in lines if not line["warmup"])


def _interrupt_mid_run(tmp_path: Path, workload: str, whole_group: bool, server_marker: str,
                       into_run_s: int, extra: list[str]) -> tuple[int, str, str, Path, bool, float]:
    """Start `edabench run`, wait for its server and for `into_run_s` measured seconds, then SIGINT it
    (alone, or its whole process group as a terminal's Ctrl-C does); returns (rc, stdout, stderr, run
    dir, server left, seconds from the signal to the exit)."""
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", workload, "--runs-dir", str(runs), "--no-report", *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, env={**os.environ, "COLUMNS": "200"})
    servers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while not servers and time.monotonic() < deadline:  # the server answers before the load starts
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.1)
            servers = _servers(proc.pid, server_marker)
        assert servers
        while _measured_seconds(runs) < into_run_s and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1].decode()
            time.sleep(0.2)
        signalled = time.monotonic()
        if whole_group:
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
        took = time.monotonic() - signalled
        server_left = any(not gone(s.pid) for s in servers)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for server in servers:  # only what this test saw start, whatever happened above
            with contextlib.suppress(psutil.Error):
                server.kill()
    (run_dir,) = list(runs.iterdir())
    return proc.returncode, out.decode(), err.decode(), run_dir, server_left, took


def _assert_interrupted_exit(rc: int, summary: dict[str, Any], out: str, err: str) -> None:
    """130, unless the run's own record says its generator fell behind: an untrusted run exits 4
    first, as documented, and a busy machine can stall a generator, which the run then reports."""
    untrusted = {c.name for c in evaluate_slos(summary) if c.integrity and not c.passed}
    assert untrusted <= {"generator_kept_up"}, (untrusted, err)
    assert rc == (UNTRUSTED if untrusted else INTERRUPTED), err
    if untrusted:
        assert "FELL BEHIND" in out, out


def _servers(pid: int, marker: str) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            if marker in " ".join(child.cmdline()):
                found.append(child)
    return found


@pytest.mark.parametrize("whole_group", [False, True], ids=["harness-alone", "terminal-ctrl-c"])
def test_ctrl_c_drains_writes_a_partial_summary_and_stops_the_echo_server(tmp_path: Path, whole_group: bool) -> None:
    rc, out, err, run_dir, server_left, _ = _interrupt_mid_run(
        tmp_path, "workloads/echo-http.toml", whole_group, "targets.echo.server", 2, ["--duration", "30"])
    assert "stopping" in err
    summary = read_json(run_dir / "summary.json")
    _assert_interrupted_exit(rc, summary, out, err)
    assert summary["interrupted"] is True
    assert summary["books_balanced"] is True
    counts = summary["ops"]["echo"]["counts"]
    assert 0 < counts["scheduled"] < 200 * 32, "the schedule stopped early"
    assert counts["scheduled"] == counts["ok"] + counts["error"] + counts["timeout"] + counts["not_sent"]
    assert summary["measured_s"] < 30, "the rate is computed over the time the schedule ran"
    assert abs(summary["ops"]["echo"]["target_rate"] - 200) < 20
    assert read_json(run_dir / "run.json")["interrupted"] is True
    gate = (run_dir / "gate.xml").read_text()
    assert 'name="complete"' in gate and "interrupted runs are partial" in gate
    assert "INTERRUPTED" in out
    assert not server_left, "the echo server the run started is still running"


def test_a_terminal_ctrl_c_mid_bank_run_writes_partial_results_without_a_lost_verdict(tmp_path: Path) -> None:
    """The bank service runs in a session of its own: a Ctrl-C at the terminal reaches the harness,
    which stops the load, drains, and then stops the service; nothing is reported lost."""
    rc, out, err, run_dir, server_left, took = _interrupt_mid_run(
        tmp_path, "workloads/bank-smoke.toml", True, "targets.bank.service", 3, ["--duration", "60"])
    summary = read_json(run_dir / "summary.json")
    _assert_interrupted_exit(rc, summary, out, err)
    assert summary["interrupted"] is True and summary["books_balanced"] is True
    problems = summary["verify"]["problems"]
    assert not any("(lost)" in p and not p.startswith("0 ") and "0 are not (lost)" not in p for p in problems), problems
    assert took < 30, f"exit {took:.0f} s after the Ctrl-C"
    assert not server_left
