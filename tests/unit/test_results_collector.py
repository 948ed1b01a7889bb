"""The collector (harness/results/collector.py) and summary.json (harness/results/summary.py).

Reports of several generator processes become one set of exact results: interval logs that hdrh's
own reader reads back, a timeseries line per second, run totals, and a summary whose books, generator
verdict, timeout share and deliveries say whether the run can be trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import orjson
import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from harness.books import Books
from harness.results.collector import MAX_WAIT_INTERVALS, Collector
from harness.results.hdr import Sparse, new_histogram, stats
from harness.results.messages import FinalReport, IntervalReport, KindInterval, from_wire, to_wire
from harness.results.summary import SCHEMA, build_summary

START_MS = 1_700_000_000_000


def sparse(values: list[int]) -> Sparse | None:
    return Sparse.of(np.array(values, dtype=np.int64))


def interval(process: int, t: int, response: list[int], *, lag: list[int] | None = None,
             counts: dict[str, int] | None = None, final: bool = False, kind: str = "echo",
             extra: dict[str, list[int]] | None = None, gauges: dict[str, float] | None = None,
             in_flight: int = 0) -> IntervalReport:
    n = len(response)
    return IntervalReport(
        process=process, t=t, final=final,
        counts=counts if counts is not None else {"scheduled": n, "sent": n, "ok": n},
        in_flight=in_flight,
        kinds={kind: KindInterval(sparse(response), sparse(response))},
        lag=sparse(lag if lag is not None else [1] * n),
        extra={m: s for m, v in (extra or {}).items() if (s := sparse(v)) is not None},
        gauges=gauges or {},
    )


def final(process: int, scheduled: int, ok: int, *, warmup: int = 0, timeout: int = 0, error: int = 0,
          not_sent: int = 0, kind: str = "echo", problems: list[str] | None = None, late: int = 0,
          expected: dict[str, int] | None = None) -> FinalReport:
    """Books of one process; the warm-up ops (the first `warmup` scheduled) all ended ok."""
    books = Books([kind])
    books.scheduled[0], books.ok[0], books.error[0] = scheduled, ok, error
    books.timeout[0], books.not_sent[0], books.warmup[0] = timeout, not_sent, warmup
    books.m_scheduled[0], books.m_ok[0], books.m_error[0] = scheduled - warmup, ok - warmup, error
    books.m_timeout[0], books.m_not_sent[0] = timeout, not_sent
    return FinalReport(process, books.as_dict(), late=late, problems=problems or [], expected=expected or {})


def collector(tmp_path: Path, processes: int, *, warmup_s: float = 0.0, total_s: float = 3.0,
              lines: list[dict[str, Any]] | None = None, hists: list[str] | None = None) -> Collector:
    return Collector(tmp_path, processes, START_MS, total_s, lambda t: 10.0 * (1 + int(t)), warmup_s,
                     on_interval=lines.append if lines is not None else None,
                     on_histogram=(lambda name, hist: hists.append(name)) if hists is not None else None)


def summarize(col: Collector, finals: list[FinalReport], processes: int = 1, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"measured_s": 2.0, "slo": {}, "interrupted": False, "max_lag_ms": 50.0,
                            "check_generator": True}
    args.update(kw)
    return build_summary("collect", col, finals, processes, args.pop("measured_s"), args.pop("slo"),
                         args.pop("interrupted"), args.pop("max_lag_ms"), args.pop("check_generator"),
                         args.pop("extra_problems", None))


def timeseries(tmp_path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in (tmp_path / "timeseries.jsonl").read_bytes().splitlines()]


def one_by_one(values: list[int]) -> HdrHistogram:
    hist = new_histogram()
    for v in values:
        hist.record_value(v)
    return hist


def read_hlog(path: Path) -> list[HdrHistogram]:
    reader = HistogramLogReader(str(path), new_histogram())
    out = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        out.append(hist)
    reader.close()
    return out


# -- when an interval is written ----------------------------------------------------------------------


def test_an_interval_is_written_once_every_process_has_reported_it(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = []
    col = collector(tmp_path, 2, lines=lines)
    col.accept(interval(0, 0, [100, 200]))
    assert lines == []
    col.accept(interval(1, 0, [300]))
    assert [(line["t"], line["ok"], line["ops"]["echo"]["count"]) for line in lines] == [(0, 3, 3)]
    col.close()


def test_a_written_interval_is_forgotten(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [100]))
    assert col.pending == {}
    col.close()


def test_an_interval_a_process_never_reported_is_written_after_max_wait_newer_ones(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = []
    col = collector(tmp_path, 2, lines=lines, total_s=60.0)
    for t in range(MAX_WAIT_INTERVALS):  # process 1 is gone: nothing is complete
        col.accept(interval(0, t, [100]))
    assert lines == []
    col.accept(interval(0, MAX_WAIT_INTERVALS, [100]))
    assert [line["t"] for line in lines] == [0], "the oldest is written once it is MAX_WAIT_INTERVALS behind"
    col.close()


def test_intervals_a_process_never_reported_are_written_at_close_in_order(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 1, [100]))
    col.accept(interval(0, 0, [100]))
    col.close()
    assert [line["t"] for line in timeseries(tmp_path)] == [0, 1]


def test_final_partial_intervals_wait_for_close(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = []
    col = collector(tmp_path, 1, lines=lines)
    col.accept(interval(0, 0, [100]))
    col.accept(interval(0, 1, [200], final=True))
    assert [line["t"] for line in lines] == [0]
    col.close()
    assert [line["t"] for line in lines] == [0, 1]


def test_a_completed_interval_also_writes_the_older_ones_still_waiting(tmp_path: Path) -> None:
    lines: list[dict[str, Any]] = []
    col = collector(tmp_path, 2, lines=lines)
    col.accept(interval(0, 0, [100]))
    col.accept(interval(0, 1, [100]))
    col.accept(interval(1, 1, [100]))  # process 1 never sends its t=0
    assert [line["t"] for line in lines] == [0, 1]
    col.close()


# -- what an interval line says -----------------------------------------------------------------------


def test_a_timeseries_line_adds_the_processes_counts_and_in_flight(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [100], counts={"scheduled": 3, "sent": 3, "ok": 1, "timeout": 1}, in_flight=1))
    col.accept(interval(1, 0, [200], counts={"scheduled": 2, "sent": 1, "ok": 1, "not_sent": 1}, in_flight=2))
    col.close()
    (line,) = timeseries(tmp_path)
    assert {k: line[k] for k in ("scheduled", "sent", "ok", "error", "timeout", "not_sent", "in_flight")} == {
        "scheduled": 5, "sent": 4, "ok": 2, "error": 0, "timeout": 1, "not_sent": 1, "in_flight": 3}


def test_a_timeseries_line_has_the_merged_percentiles_of_each_op_and_the_lag(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [1_000, 2_000], lag=[10, 20]))
    col.accept(interval(1, 0, [3_000, 400_000], lag=[30, 5_000]))
    col.close()
    (line,) = timeseries(tmp_path)
    merged, lag = one_by_one([1_000, 2_000, 3_000, 400_000]), one_by_one([10, 20, 30, 5_000])
    assert line["ops"]["echo"] == {"count": 4, "p50_us": merged.get_value_at_percentile(50),
                                   "p99_us": merged.get_value_at_percentile(99), "max_us": merged.get_max_value()}
    assert line["lag_p99_us"] == lag.get_value_at_percentile(99)


def test_a_timeseries_line_has_the_target_rate_at_mid_second_and_zero_after_the_run(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, total_s=2.0)
    for t in range(3):  # t = 2 is the drain, after the schedule
        col.accept(interval(0, t, [100]))
    col.close()
    assert [line["target_rate"] for line in timeseries(tmp_path)] == [10.0, 20.0, 0.0]


def test_warmup_seconds_are_flagged_and_left_out_of_the_lag_verdict(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, warmup_s=1.0)
    col.accept(interval(0, 0, [100], lag=[900_000]))
    col.accept(interval(0, 1, [100], lag=[7]))
    col.close()
    assert [line["warmup"] for line in timeseries(tmp_path)] == [True, False]
    assert col.lag_intervals == [(1, 7)]


def test_observed_metrics_and_gauges_reach_the_timeseries(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [100], extra={"ryw_lag": [1_234]}, gauges={"consumer_lag": 5.0}))
    col.accept(interval(1, 0, [100], extra={"ryw_lag": [1_234]}, gauges={"consumer_lag": 9.0}))
    col.close()
    (line,) = timeseries(tmp_path)
    assert line["observed"]["ryw_lag"]["count"] == 2
    assert line["extra"] == {"consumer_lag": 9.0}, "a gauge of several processes is their maximum"
    assert col.metrics() == ["ryw_lag"]


def test_live_totals_add_up_the_written_intervals(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [1, 2], counts={"scheduled": 3, "ok": 2, "error": 1}))
    col.accept(interval(0, 1, [1], counts={"scheduled": 1, "ok": 1}))
    assert col.live == {"ok": 3, "error": 1, "timeout": 0, "not_sent": 0, "scheduled": 4}
    col.close()


def test_every_histogram_written_is_shown_to_on_histogram(tmp_path: Path) -> None:
    hists: list[str] = []
    col = collector(tmp_path, 1, hists=hists)
    col.accept(interval(0, 0, [100], extra={"ryw_lag": [5]}))
    col.close()
    assert sorted(hists) == ["echo.response", "echo.service", "ryw_lag", "schedule-lag"]


# -- interval logs and totals -------------------------------------------------------------------------


def test_hlog_files_are_read_by_hdrhs_reader_with_counts_adding_up(tmp_path: Path) -> None:
    per_second = {0: ([1_000, 2_000], [3_000]), 1: ([5_000], [7_000, 11_000, 13_000])}
    col = collector(tmp_path, 2)
    for t, (a, b) in per_second.items():
        col.accept(interval(0, t, a))
        col.accept(interval(1, t, b))
    col.close()
    for name in ("echo.response", "echo.service"):
        logged = read_hlog(tmp_path / f"{name}.hlog")
        assert [h.get_total_count() for h in logged] == [3, 4]
        for hist, (a, b) in zip(logged, per_second.values(), strict=True):
            assert hist.equals(one_by_one(a + b))
        assert sum(h.get_total_count() for h in logged) == col.total(name).get_total_count() == 7
    assert [h.get_total_count() for h in read_hlog(tmp_path / "schedule-lag.hlog")] == [3, 4]


def test_hlog_intervals_are_stamped_from_the_runs_start(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [100]))
    col.accept(interval(0, 1, [100]))
    col.close()
    reader = HistogramLogReader(str(tmp_path / "echo.response.hlog"), new_histogram())
    stamps = []
    while (hist := reader.get_next_interval_histogram()) is not None:
        stamps.append((hist.get_start_time_stamp(), hist.get_end_time_stamp()))
    assert reader.get_start_time_sec() == START_MS / 1000
    reader.close()
    assert stamps == [(START_MS, START_MS + 1000), (START_MS + 1000, START_MS + 2000)]


def test_totals_are_the_histogram_of_all_samples_of_all_processes(tmp_path: Path) -> None:
    a, b = [1_000 * i for i in range(1, 51)], [1_000 * i + 7 for i in range(40, 141)]
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, a[:20]))
    col.accept(interval(1, 0, b[:70]))
    col.accept(interval(0, 1, a[20:]))
    col.accept(interval(1, 1, b[70:]))
    col.close()
    total = col.total("echo.response")
    assert total.equals(one_by_one(a + b))
    assert (total.min_value, total.max_value) == (1_000, 140_007), "raw extremes, not bucket edges"


def test_the_total_of_a_log_never_written_is_empty(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    assert col.total("nothing.response").get_total_count() == 0


def test_clipped_samples_of_every_process_are_counted(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [5, 4_000_000_000]))
    col.accept(interval(1, 0, [-1]))
    col.close()
    assert col.clipped == 2 * 2, "response and service each clipped 2"


# -- messages on the wire -----------------------------------------------------------------------------


def test_an_interval_report_survives_the_wire_form() -> None:
    report = interval(1, 4, [100, 2_000], extra={"ryw_lag": [3]}, gauges={"lag": 2.5}, in_flight=7, final=True)
    wire = msgpack.unpackb(msgpack.packb(to_wire(report)), raw=False)  # as Locust ships it
    assert from_wire(wire) == report


def test_a_final_report_survives_the_wire_form() -> None:
    report = final(2, 10, 8, timeout=2, problems=["x"], late=3, expected={"outcome": 10})
    report.interrupted, report.pids, report.schedule_end_ns = True, {"svc": 42}, 123
    wire = msgpack.unpackb(msgpack.packb(to_wire(report)), raw=False)
    assert from_wire(wire) == report


# -- summary.json -------------------------------------------------------------------------------------


def test_summary_percentiles_are_those_of_all_samples_of_all_processes(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    a, b = [1_000 * i for i in range(1, 51)], [1_000 * i + 7 for i in range(40, 141)]
    col.accept(interval(0, 0, a))
    col.accept(interval(1, 0, b))
    col.close()
    summary = summarize(col, [final(0, len(a), len(a)), final(1, len(b), len(b))], processes=2)
    assert summary["ops"]["echo"]["response_time_us"] == stats(one_by_one(a + b))
    assert summary["overall"]["response_time_us"] == stats(one_by_one(a + b))
    assert summary["ops"]["echo"]["counts"]["scheduled"] == len(a) + len(b)
    assert (summary["schema"], summary["books_balanced"], summary["processes"]) == (SCHEMA, True, 2)


def test_rates_are_measured_counts_over_the_measured_time(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    block = summarize(col, [final(0, 30, 25, warmup=10, error=5)], measured_s=4.0)["ops"]["echo"]
    assert (block["target_rate"], block["achieved_rate"]) == (5.0, 3.75)  # (30 - 10) / 4, (25 - 10) / 4
    assert block["error_rate"] == 0.25


def test_ops_not_sent_count_in_the_error_rate(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    block = summarize(col, [final(0, 10, 6, not_sent=4)])["ops"]["echo"]
    assert block["error_rate"] == 0.4


def test_the_timeout_share_is_timeouts_over_measured_ops(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    summary = summarize(col, [final(0, 40, 30, timeout=10)])
    assert summary["ops"]["echo"]["timeout_share"] == 0.25
    assert summary["overall"]["timeout_share"] == 0.25


def test_a_process_that_never_reports_its_books_unbalances_the_run(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [5]))
    col.close()
    summary = summarize(col, [final(0, 1, 1)], processes=2)
    assert summary["books_balanced"] is False
    assert summary["verify"]["problems"] == ["1 generator process(es) did not report their books"]


def test_books_with_an_op_without_outcome_unbalance_the_run(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    assert summarize(col, [final(0, 10, 9)])["books_balanced"] is False


def test_the_summary_minimum_is_the_smallest_sample_even_with_empty_intervals(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, warmup_s=1.0)
    col.accept(interval(0, 0, [], lag=[3], counts={"scheduled": 1, "sent": 1, "ok": 1}))  # warm-up: no samples
    col.accept(interval(0, 1, [5_000, 7_000], lag=[2, 4]))
    col.close()
    summary = summarize(col, [final(0, 3, 3, warmup=1)])
    assert summary["ops"]["echo"]["response_time_us"]["min"] == 5_000
    assert summary["schedule_lag_us"]["min"] == 2


def test_warm_up_schedule_lag_does_not_fail_the_generator_verdict(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, warmup_s=1.0)
    col.accept(interval(0, 0, [], lag=[90_000] * 10, counts={"scheduled": 10, "sent": 10, "ok": 10}))
    col.accept(interval(0, 1, [5_000] * 10, lag=[2_000] * 10))
    col.close()
    generator = summarize(col, [final(0, 20, 20, warmup=10)])["generator"]
    assert generator["kept_up"] is True
    assert generator["schedule_lag_p99_ms"] < 3


def test_the_summary_schedule_lag_is_the_measured_window_s(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, warmup_s=1.0)
    col.accept(interval(0, 0, [], lag=[90_000] * 10, counts={"scheduled": 10, "sent": 10, "ok": 10}))
    col.accept(interval(0, 1, [5_000] * 10, lag=[2_000] * 10))
    col.close()
    lag = summarize(col, [final(0, 20, 20, warmup=10)])["schedule_lag_us"]
    assert lag["count"] == 10
    assert lag["max"] < 2_100


def test_measured_schedule_lag_still_fails_the_generator_verdict(tmp_path: Path) -> None:
    col = collector(tmp_path, 1, warmup_s=1.0)
    col.accept(interval(0, 0, [], lag=[2_000] * 10, counts={"scheduled": 10, "sent": 10, "ok": 10}))
    col.accept(interval(0, 1, [5_000] * 10, lag=[90_000] * 10))
    col.close()
    generator = summarize(col, [final(0, 20, 20, warmup=10)])["generator"]
    assert generator["kept_up"] is False
    assert generator["intervals_behind"] == [1]


def test_a_run_with_nothing_scheduled_is_empty(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    assert summarize(col, [])["empty"] is True
    assert summarize(col, [final(0, 0, 0)], processes=1)["empty"] is True


def test_a_run_with_ops_is_not_empty(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    assert summarize(col, [final(0, 5, 5)])["empty"] is False


def test_the_generator_kept_up_when_the_lag_p99_is_within_the_limit(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [100], lag=[1_000] * 100))
    col.close()
    gen = summarize(col, [final(0, 100, 100)], max_lag_ms=50.0)["generator"]
    assert {k: gen[k] for k in ("kept_up", "checked", "max_schedule_lag_ms", "schedule_lag_p99_ms",
                                "intervals_behind", "intervals_behind_count")} == {
        "kept_up": True, "checked": True, "max_schedule_lag_ms": 50.0, "schedule_lag_p99_ms": 1.0,
        "intervals_behind": [], "intervals_behind_count": 0}


def test_the_generator_fell_behind_when_the_lag_p99_is_over_the_limit_and_says_when(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [100], lag=[1_000] * 10))
    col.accept(interval(0, 1, [100], lag=[200_000] * 10))
    col.accept(interval(0, 2, [100], lag=[300_000] * 10))
    col.close()
    gen = summarize(col, [final(0, 30, 30)], max_lag_ms=50.0)["generator"]
    assert gen["kept_up"] is False
    assert (gen["intervals_behind"], gen["intervals_behind_count"]) == ([1, 2], 2)
    assert gen["schedule_lag_p99_ms"] == pytest.approx(300.0, rel=1e-3)


def test_the_generator_verdict_says_whether_the_spec_checks_it(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    assert summarize(col, [final(0, 1, 1)], check_generator=False)["generator"]["checked"] is False


def test_a_run_without_lag_samples_kept_up(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    gen = summarize(col, [final(0, 0, 0)])["generator"]
    assert (gen["kept_up"], gen["schedule_lag_p99_ms"]) == (True, None)


def test_deliveries_compare_the_expected_counts_with_what_was_observed(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.accept(interval(0, 0, [100], extra={"outcome": [10, 20]}))
    col.accept(interval(1, 0, [100], extra={"outcome": [30]}))
    col.close()
    finals = [final(0, 1, 1, expected={"outcome": 3}), final(1, 1, 1, expected={"outcome": 2})]
    summary = summarize(col, finals, processes=2)
    assert summary["deliveries"] == {"outcome": {"expected": 5, "observed": 3, "missing": 2}}
    assert summary["verify"]["problems"] == ["outcome: 2 of 5 expected deliveries never arrived"]


def test_all_expected_deliveries_arrived_is_no_problem(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(interval(0, 0, [100], extra={"outcome": [10]}))
    col.close()
    summary = summarize(col, [final(0, 1, 1, expected={"outcome": 1})])
    assert summary["deliveries"]["outcome"]["missing"] == 0
    assert summary["verify"]["problems"] == []


def test_problems_of_every_process_are_listed_once_after_the_runs_own(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.close()
    finals = [final(0, 1, 1, problems=["ledger off by 3"]), final(1, 1, 1, problems=["ledger off by 3", "x"])]
    summary = summarize(col, finals, processes=2, extra_problems=["service restarted"])
    assert summary["verify"]["problems"] == ["service restarted", "ledger off by 3", "x"]


def test_late_completions_of_every_process_are_added(tmp_path: Path) -> None:
    col = collector(tmp_path, 2)
    col.close()
    assert summarize(col, [final(0, 1, 1, late=2), final(1, 1, 1, late=3)], processes=2)["late_completions"] == 5


def test_the_summary_carries_the_interrupted_flag_and_the_slo(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.close()
    summary = summarize(col, [final(0, 1, 1)], interrupted=True, slo={"p99_ms": 5})
    assert (summary["interrupted"], summary["slo"], summary["closed_loop"]) == (True, {"p99_ms": 5}, False)


def test_each_kind_has_its_block_and_overall_adds_them(tmp_path: Path) -> None:
    col = collector(tmp_path, 1)
    col.accept(IntervalReport(0, 0, False, {"scheduled": 3, "sent": 3, "ok": 3}, 0,
                              {"read": KindInterval(sparse([1_000, 2_000]), sparse([900, 1_900])),
                               "write": KindInterval(sparse([9_000]), sparse([8_000]))}, sparse([1, 1, 1])))
    col.close()
    summary = summarize(col, [FinalReport(0, {**final(0, 2, 2, kind="read").books,
                                              **final(0, 1, 1, kind="write").books})])
    assert sorted(summary["ops"]) == ["read", "write"]
    assert summary["ops"]["write"]["response_time_us"]["count"] == 1
    assert summary["overall"]["response_time_us"] == stats(one_by_one([1_000, 2_000, 9_000]))
    assert summary["overall"]["counts"]["scheduled"] == 3
