"""The collector: reports of several generator processes become one set of exact results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from harness.books import KindBooks
from harness.collector import Collector
from harness.recorder import encode, new_histogram, stats
from harness.spec import parse_spec

SPEC = parse_spec({"name": "collect", "target": "fake", "duration_s": 2, "warmup_s": 1, "rate": {"rate": 10},
                   "ops": [{"name": "echo"}]})


def enc(values: list[int]) -> str | None:
    if not values:
        return None
    hist = new_histogram()
    for v in values:
        hist.record_value(v)
    return encode(hist)


def interval(process: int, t: int, response: list[int], lag: list[int] | None = None,
             counts: dict[str, int] | None = None, final: bool = False) -> dict[str, Any]:
    return {"type": "interval", "process": process, "t": t, "final": final,
            "counts": counts or {"scheduled": len(response), "sent": len(response), "ok": len(response)},
            "in_flight": 0, "kinds": {"echo": {"response": enc(response), "service": enc(response)}},
            "lag": enc(lag if lag is not None else [1] * len(response)), "extra": {}, "gauges": {}}


def final(process: int, scheduled: int, ok: int, warmup: int = 0) -> dict[str, Any]:
    books = KindBooks("echo")
    books.scheduled, books.ok, books.warmup = scheduled, ok, warmup
    books.m_scheduled, books.m_ok = scheduled - warmup, ok - warmup
    return {"type": "final", "process": process, "books": {"echo": books.as_dict()}, "late_completions": 0,
            "problems": [], "interrupted": False, "pids": {}}


def collector(tmp_path: Path, processes: int) -> Collector:
    return Collector(SPEC, tmp_path, processes, 1_700_000_000_000)


def timeseries(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (tmp_path / "timeseries.jsonl").read_bytes().splitlines()]


def test_an_interval_is_written_once_every_process_has_reported_it(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = []
    col = Collector(SPEC, tmp_path, 2, 1_700_000_000_000, on_interval=lines.append)
    col.accept(interval(0, 0, [100, 200]))
    assert lines == []
    col.accept(interval(1, 0, [300]))
    assert [(line["t"], line["ok"], line["ops"]["echo"]["count"]) for line in lines] == [(0, 3, 3)]


def test_intervals_a_process_never_reported_are_written_at_close(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [100]))
    col.accept(interval(0, 1, [100]))
    col.close()
    assert [line["t"] for line in timeseries(tmp_path)] == [0, 1]


def test_summary_percentiles_are_those_of_all_samples_of_all_processes(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    a, b = [1_000 * i for i in range(1, 51)], [1_000 * i + 7 for i in range(40, 141)]
    col.accept(interval(0, 0, a))
    col.accept(interval(1, 0, b))
    col.accept(final(0, len(a), len(a)))
    col.accept(final(1, len(b), len(b)))
    col.close()
    everything = new_histogram()
    for v in a + b:
        everything.record_value(v)
    summary = col.summary(2.0, interrupted=False)
    expected = stats(everything)
    got = summary["ops"]["echo"]["response_time_us"]
    assert {k: got[k] for k in ("count", "p50", "p90", "p99", "max")} == {
        k: expected[k] for k in ("count", "p50", "p90", "p99", "max")}
    assert summary["ops"]["echo"]["counts"]["scheduled"] == len(a) + len(b)
    assert summary["books_balanced"] is True


def test_a_process_that_never_reports_its_books_unbalances_the_run(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [5]))
    col.accept(final(0, 1, 1))
    col.close()
    summary = col.summary(2.0, interrupted=False)
    assert summary["books_balanced"] is False
    assert summary["verify"]["problems"] == ["1 generator process(es) did not report their books"]


def test_the_summary_minimum_is_the_smallest_sample_even_with_empty_intervals(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [], lag=[3], counts={"scheduled": 1, "sent": 1, "ok": 1}))  # warm-up: no samples
    col.accept(interval(0, 1, [5_000, 7_000], lag=[2, 4]))
    col.accept(final(0, 3, 3, warmup=1))
    col.close()
    summary = col.summary(2.0, interrupted=False)
    assert summary["ops"]["echo"]["response_time_us"]["min"] == 5_000
    assert summary["schedule_lag_us"]["min"] == 2
