"""The Locust-side bookkeeping without Locust: arrivals, request events, timeouts, reports, specs.

`ProcessRecorder` is plain Python, so its accounting is checked here directly, and its reports
are fed to the harness's Collector to check that they merge into a balanced summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from harness.collector import Collector
from harness.locust.cli import parse_options, parse_timespan
from harness.locust.recording import ProcessRecorder, error_kind
from harness.locust.workload import read_literal, resolve
from harness.spec import SpecError, parse_spec

MS = 1_000_000


def _recorder(warmup_s: float = 0.0, timeout_s: float = 5.0) -> tuple[ProcessRecorder, list[dict[str, Any]]]:
    reports: list[dict[str, Any]] = []
    rec = ProcessRecorder(0, warmup_s, timeout_s, reports.append)
    rec.start(time.monotonic_ns() - 1000 * MS)  # started a second ago
    return rec, reports


def test_an_arrival_is_measured_from_its_intended_time_by_its_first_request() -> None:
    rec, _ = _recorder()
    intended = time.monotonic_ns() - 300 * MS  # the system held it for 300 ms before it answered
    op = rec.arrive("echo_task", intended, 100)
    assert op is not None
    rec.op_started(op)
    rec.on_request("echo", 20.0, None, op)  # Locust saw 20 ms from the send
    rec.on_request("echo", 5.0, None, op)  # a second request of the same task: closed loop
    rec.op_ended(op, None)
    books = rec.books["echo"]
    assert (books.scheduled, books.ok, books.m_ok) == (2, 2, 2)
    resp = sorted(books.response._buf)
    assert resp[0] == 5000 and resp[1] >= 300_000, "the arrival is measured from its intended time"
    assert sorted(books.service._buf) == [5000, 20000]
    assert rec.arrivals == 1 and rec.closed_requests == 1 and not rec.in_flight


def test_timeouts_not_sent_and_failed_tasks_keep_the_books_balanced() -> None:
    rec, reports = _recorder(timeout_s=0.1)
    now = time.monotonic_ns()
    late = rec.arrive("t", now - 200 * MS, 10)
    failed = rec.arrive("t", now, 10)
    assert late is not None and failed is not None
    rec.sweep()  # the first is past its timeout
    rec.on_request("echo", 250.0, None, late)  # its answer comes too late: counted, not recorded
    rec.op_ended(failed, RuntimeError("boom"))
    for _ in range(10):
        rec.arrive("t", now, 1 + len(rec.in_flight))
    assert rec.arrive("t", now, 0) is None  # over the in-flight cap: not sent
    final = rec.finish()
    books = final["books"]["t"]
    assert books["timeout"] == 11 and books["errors"] == {"task_RuntimeError": 1}
    assert books["not_sent_reasons"] == {"in_flight_cap": 1}
    assert books["scheduled"] == books["ok"] + books["error"] + books["timeout"] + books["not_sent"] == 13
    assert final["late_completions"] == 1 and not final["problems"]
    assert reports[-1] is final and reports[-2]["final"]


def test_warm_up_ops_are_counted_but_not_measured() -> None:
    rec, _ = _recorder(warmup_s=60)  # warm-up until 59 s from now
    op = rec.arrive("t", time.monotonic_ns(), 10)
    rec.on_request("echo", 1.0, None, op)
    rec.on_request("echo", 1.0, "http_503", None)
    books = rec.books["echo"]
    assert (books.scheduled, books.warmup, books.m_scheduled, books.error) == (2, 2, 0, 1)
    assert len(books.response) == 0


def test_reports_merge_into_a_balanced_summary(tmp_path: Path) -> None:
    spec = parse_spec({"name": "t", "target": "echo", "duration_s": 1})
    collector = Collector(spec, tmp_path, 2, int(time.time() * 1000))
    for process in (0, 1):
        rec = ProcessRecorder(process, 0.0, 5.0, collector.accept)
        rec.start()
        for i in range(10):
            op = rec.arrive("t", time.monotonic_ns(), 100)
            rec.on_request("echo", 1.0 + i, None, op)
        rec.emit_interval()
        rec.finish()
    collector.close()
    summary = collector.summary(1.0, interrupted=False)
    assert summary["books_balanced"] and not summary["verify"]["problems"]
    assert summary["ops"]["echo"]["response_time_us"]["count"] == 20
    assert (tmp_path / "echo.response.hlog").exists()


def test_error_kinds() -> None:
    class Kinded(Exception):
        kind = "rejected:insufficient_funds"

    class Resp:
        status_code = 503

    assert error_kind(None) is None
    assert error_kind(Kinded()) == "rejected:insufficient_funds"
    assert error_kind(ValueError(), Resp()) == "http_503"
    assert error_kind(ConnectionError()) == "ConnectionError"


def test_locustfile_specs_are_read_without_importing_them(tmp_path: Path) -> None:
    spec = read_literal(resolve("echo"))
    assert spec["target"] == "echo" and parse_spec(spec).rate.rate == 200
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nEDABENCH = dict(name=os.getcwd())\n")
    with pytest.raises(SpecError, match="literal"):
        read_literal(bad)
    with pytest.raises(SpecError, match="no such locustfile"):
        resolve("nope")


def test_cli_parsers() -> None:
    assert parse_timespan("90") == 90 and parse_timespan("1m30s") == 90 and parse_timespan("2h") == 7200
    assert parse_options(["base_ms=50", "transport=http", "flag=true"]) == {
        "base_ms": 50, "transport": "http", "flag": True}
