"""One generator process against an in-process fake driver: outcomes, books, warm-up and latency origins.

The fake driver isolates the generator's own logic (scheduling, in-flight table, timeouts,
recording); the real transport is covered by the integration tests against the echo server.
Runs are a fraction of a second of real time, but no assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hdrh.histogram import HdrHistogram

from harness.books import balanced
from harness.generator import Generator, GeneratorConfig
from harness.protocol import OK, DriverContext, Op, Result
from harness.recorder import decode, merge_encoded, new_histogram
from harness.spec import parse_spec

RUN_ID = "20261123T000000Z-gen-test"
Send = Callable[["FakeDriver", Op], Awaitable[Result | None]]


class FakeDriver:
    """Records what it was sent; what `send` does is the test's `behaviour`."""

    name: ClassVar[str] = "fake"
    needs: ClassVar[tuple[str, ...]] = ()
    behaviour: ClassVar[Send]

    def __init__(self) -> None:
        self.ctx: DriverContext | None = None
        self.sent: list[Op] = []
        self.stopped = False

    async def start(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    async def send(self, op: Op) -> Result | None:
        self.sent.append(op)
        return await type(self).behaviour(self, op)

    async def stop(self) -> None:
        self.stopped = True

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        assert self.ctx is not None
        self.ctx.completions.complete(op_id, error, completed_ns)


def driver(behaviour: Send) -> type[FakeDriver]:
    return type("Fake", (FakeDriver,), {"behaviour": staticmethod(behaviour)})


@dataclass
class Run:
    final: dict[str, Any]
    intervals: list[dict[str, Any]]
    driver: FakeDriver

    def books(self, kind: str = "op") -> dict[str, Any]:
        return self.final["books"][kind]

    def histogram(self, metric: str, kind: str = "op") -> HdrHistogram:
        """All interval histograms of `metric` ("response" or "service") merged."""
        total = new_histogram()
        for report in self.intervals:
            enc = report["kinds"].get(kind, {}).get(metric)
            if enc:
                merge_encoded(total, enc)
        return total

    def interval_sum(self, key: str) -> int:
        return sum(r["counts"].get(key, 0) for r in self.intervals)


def spec(**overrides: Any) -> Any:
    data: dict[str, Any] = {"name": "gen-test", "target": "fake", "duration_s": 0.2, "warmup_s": 0,
                            "timeout_s": 5, "drain_timeout_s": 2, "rate": {"rate": 100}}
    data.update(overrides)
    return parse_spec(data)


async def run(behaviour: Send, tmp_path: Path, workload: Any = None, stop: asyncio.Event | None = None,
              **overrides: Any) -> Run:
    reports: list[dict[str, Any]] = []
    cfg = GeneratorConfig(spec(**overrides), driver(behaviour), workload, {}, str(tmp_path), RUN_ID)
    gen = Generator(cfg, reports.append)
    await gen.start_driver()
    try:
        final = await gen.run(time.monotonic_ns() + 5_000_000, stop or asyncio.Event())
    finally:
        await gen.stop_driver()
    assert reports[-1] is final
    assert gen.driver.stopped
    return Run(final, [r for r in reports if r["type"] == "interval"], gen.driver)


def assert_balanced(result: Run) -> None:
    for kind, books in result.final["books"].items():
        assert balanced(books), f"{kind}: {books}"
        m = books["measured"]
        assert m["scheduled"] + books["warmup"] == books["scheduled"]


# -- driver behaviours ---------------------------------------------------------------------------------


async def ok(drv: FakeDriver, op: Op) -> Result | None:
    return OK


async def http_503(drv: FakeDriver, op: Op) -> Result | None:
    return Result(error="http_503")


async def refuse(drv: FakeDriver, op: Op) -> Result | None:
    raise ConnectionRefusedError("nobody listening")


async def complete_later(drv: FakeDriver, op: Op) -> Result | None:
    asyncio.get_running_loop().call_later(0.005, drv.complete, op.id)
    return None


async def never(drv: FakeDriver, op: Op) -> Result | None:
    return None


async def slow_ok(drv: FakeDriver, op: Op) -> Result | None:
    await asyncio.sleep(0.02)
    return OK


async def done_7ms_after_intended(drv: FakeDriver, op: Op) -> Result | None:
    return Result(completed_ns=op.intended_ns + 7_000_000)


async def done_3ms_after_sent(drv: FakeDriver, op: Op) -> Result | None:
    return Result(completed_ns=op.sent_ns + 3_000_000)


# -- outcomes ------------------------------------------------------------------------------------------


async def test_synchronous_completions_count_as_ok(tmp_path: Path) -> None:
    result = await run(ok, tmp_path)
    books = result.books()
    assert (books["scheduled"], books["ok"], books["error"], books["timeout"], books["not_sent"]) == (20, 20, 0, 0, 0)
    assert len(result.driver.sent) == 20
    assert result.histogram("response").get_total_count() == 20
    assert result.histogram("service").get_total_count() == 20
    assert result.final["interrupted"] is False
    assert_balanced(result)


async def test_an_error_result_counts_as_error_with_its_kind(tmp_path: Path) -> None:
    result = await run(http_503, tmp_path)
    books = result.books()
    assert (books["ok"], books["error"], books["errors"]) == (0, 20, {"http_503": 20})
    assert books["measured"]["error"] == 20
    assert result.histogram("response").get_total_count() == 0, "errors have no latency sample"
    assert_balanced(result)


async def test_a_raising_send_counts_as_error_named_by_the_exception_class(tmp_path: Path) -> None:
    result = await run(refuse, tmp_path)
    books = result.books()
    assert (books["ok"], books["error"], books["errors"]) == (0, 20, {"ConnectionRefusedError": 20})
    assert_balanced(result)


async def test_asynchronous_completion_through_completions_counts_as_ok(tmp_path: Path) -> None:
    result = await run(complete_later, tmp_path)
    books = result.books()
    assert (books["scheduled"], books["ok"], books["timeout"]) == (20, 20, 0)
    assert result.histogram("response").get_total_count() == 20
    assert result.final["late_completions"] == 0
    assert_balanced(result)


async def test_asynchronous_error_completion_counts_as_error(tmp_path: Path) -> None:
    async def fail_later(drv: FakeDriver, op: Op) -> Result | None:
        asyncio.get_running_loop().call_soon(drv.complete, op.id, "rejected")
        return None

    result = await run(fail_later, tmp_path)
    assert (result.books()["error"], result.books()["errors"]) == (20, {"rejected": 20})
    assert_balanced(result)


async def test_ops_that_never_complete_become_timeouts(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=0.05, drain_timeout_s=0.5)
    books = result.books()
    assert (books["scheduled"], books["ok"], books["error"], books["timeout"]) == (20, 0, 0, 20)
    assert books["measured"]["timeout"] == 20
    assert result.histogram("response").get_total_count() == 0
    assert_balanced(result)


async def test_ops_still_in_flight_when_the_drain_gives_up_are_timeouts(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=60, drain_timeout_s=0)
    assert (result.books()["timeout"], result.books()["ok"]) == (20, 0)
    assert_balanced(result)


async def test_timeouts_are_counted_while_the_run_goes_on(tmp_path: Path) -> None:
    result = await run(never, tmp_path, duration_s=1.5, rate={"rate": 20}, timeout_s=0.05, drain_timeout_s=0.5)
    during = sum(r["counts"].get("timeout", 0) for r in result.intervals if not r["final"])
    assert during > 0, "the sweeper expires ops past timeout_s before the end of the run"
    assert result.books()["timeout"] == 30
    assert_balanced(result)


async def test_a_completion_after_the_timeout_is_counted_late_not_as_a_second_outcome(tmp_path: Path) -> None:
    ids: list[str] = []

    async def keep(drv: FakeDriver, op: Op) -> Result | None:
        ids.append(op.id)
        return None

    reports: list[dict[str, Any]] = []
    gen = Generator(GeneratorConfig(spec(timeout_s=60, drain_timeout_s=0), driver(keep), None, {},
                                    str(tmp_path), RUN_ID), reports.append)
    await gen.start_driver()
    final = await gen.run(time.monotonic_ns(), asyncio.Event())
    for op_id in ids:  # the driver reports them after the run gave up on them
        gen.driver.complete(op_id)
    gen.driver.complete("no-such-op")
    assert final["books"]["op"]["timeout"] == 20
    assert gen.late == 21
    assert gen.books["op"].ok == 0


async def test_a_second_completion_of_the_same_op_is_counted_late(tmp_path: Path) -> None:
    async def twice(drv: FakeDriver, op: Op) -> Result | None:
        drv.complete(op.id)
        return OK  # the synchronous result finishes the same op again

    result = await run(twice, tmp_path)
    assert (result.books()["ok"], result.final["late_completions"]) == (20, 20)
    assert_balanced(result)


async def test_the_in_flight_cap_gives_not_sent_with_its_reason(tmp_path: Path) -> None:
    # one burst of 20 ops at the same instant against a driver that never answers: 5 go, 15 are refused
    result = await run(never, tmp_path, max_in_flight=5, rate={"profile": "burst", "burst_ops": 20},
                       drain_timeout_s=0)
    books = result.books()
    assert (books["scheduled"], books["not_sent"], books["timeout"]) == (20, 15, 5)
    assert books["not_sent_reasons"] == {"in_flight_cap": 15}
    assert len(result.driver.sent) == 5
    assert_balanced(result)


async def test_interval_counts_add_up_to_the_books(tmp_path: Path) -> None:
    result = await run(never, tmp_path, max_in_flight=5, rate={"profile": "burst", "burst_ops": 20},
                       drain_timeout_s=0)
    books = result.books()
    for key in ("scheduled", "ok", "error", "timeout", "not_sent"):
        assert result.interval_sum(key) == books[key], key
    assert result.interval_sum("sent") == books["scheduled"] - books["not_sent"]


# -- warm-up -------------------------------------------------------------------------------------------


async def test_warmup_ops_are_counted_but_not_recorded(tmp_path: Path) -> None:
    # 100/s for 0.205 s: 21 arrivals, those at 0.00 .. 0.10 s (11) are warm-up
    result = await run(ok, tmp_path, warmup_s=0.105, duration_s=0.1)
    books = result.books()
    assert (books["scheduled"], books["ok"], books["warmup"]) == (21, 21, 11)
    assert books["measured"] == {"scheduled": 10, "ok": 10, "error": 0, "timeout": 0, "not_sent": 0}
    assert result.histogram("response").get_total_count() == 10
    assert result.histogram("service").get_total_count() == 10
    assert_balanced(result)


async def test_warmup_errors_and_timeouts_stay_out_of_the_measured_counts(tmp_path: Path) -> None:
    async def alternate(drv: FakeDriver, op: Op) -> Result | None:
        return Result(error="bad") if len(drv.sent) % 2 else None

    result = await run(alternate, tmp_path, warmup_s=0.105, duration_s=0.1, timeout_s=60, drain_timeout_s=0)
    books = result.books()
    # arrivals 1, 3, ... fail at once; 2, 4, ... never answer; 11 of the 21 are warm-up
    assert (books["error"], books["timeout"]) == (11, 10)
    assert books["measured"] == {"scheduled": 10, "ok": 0, "error": 5, "timeout": 5, "not_sent": 0}
    assert_balanced(result)


# -- where latency is measured from --------------------------------------------------------------------


async def test_response_time_is_measured_from_the_intended_start(tmp_path: Path) -> None:
    result = await run(done_7ms_after_intended, tmp_path)
    resp = result.histogram("response")
    assert resp.get_total_count() == 20
    assert resp.get_count_at_value(7_000) == 20, "every response is exactly completion - intended"


async def test_service_time_is_measured_from_the_actual_send(tmp_path: Path) -> None:
    result = await run(done_3ms_after_sent, tmp_path)
    svc = result.histogram("service")
    assert svc.get_count_at_value(3_000) == 20, "every service time is exactly completion - sent"
    assert result.histogram("response").get_min_value() >= 3_000


async def test_every_op_is_sent_at_or_after_its_intended_time(tmp_path: Path) -> None:
    result = await run(ok, tmp_path)
    assert all(op.sent_ns >= op.intended_ns for op in result.driver.sent)
    intended = [op.intended_ns for op in result.driver.sent]
    assert intended == sorted(intended)
    assert intended[1] - intended[0] == 10_000_000, "100/s: 10 ms apart on the schedule"


async def test_a_late_completion_shows_a_response_time_no_shorter_than_the_service_time(tmp_path: Path) -> None:
    result = await run(slow_ok, tmp_path)
    resp, svc = result.histogram("response"), result.histogram("service")
    assert resp.get_total_count() == svc.get_total_count() == 20
    assert svc.get_min_value() >= 19_000, "the driver took at least 20 ms"
    # response = service + schedule lag for each op, so every quantile of one bounds the other's
    for q in (0, 10, 50, 90, 99, 100):
        assert resp.get_value_at_percentile(q) >= svc.get_value_at_percentile(q), q


# -- the driver's view ---------------------------------------------------------------------------------


async def test_the_driver_gets_unique_op_ids_with_its_prefix_and_its_context(tmp_path: Path) -> None:
    result = await run(ok, tmp_path, target_options={"answer": 42})
    ctx = result.driver.ctx
    assert ctx is not None
    assert (ctx.options, ctx.process_index, ctx.process_count, ctx.run_id) == ({"answer": 42}, 0, 1, RUN_ID)
    ids = [op.id for op in result.driver.sent]
    assert len(set(ids)) == len(ids) == 20
    assert ctx.op_id_prefix and all(i.startswith(ctx.op_id_prefix) for i in ids)


async def test_two_runs_of_the_same_workload_give_their_ops_different_id_prefixes(tmp_path: Path) -> None:
    prefixes = set()
    for run_id in ("20261123T180000Z-echo-kafka", "20261123T180100Z-echo-kafka"):
        gen = Generator(GeneratorConfig(spec(), driver(ok), None, {}, str(tmp_path), run_id), lambda r: None)
        await gen.start_driver()
        prefixes.add(gen.driver.ctx.op_id_prefix)
        await gen.stop_driver()
    assert len(prefixes) == 2, "a shared reply topic cannot tell the two runs' replies apart"


async def test_ops_follow_the_mix_and_each_kind_has_balanced_books(tmp_path: Path) -> None:
    result = await run(ok, tmp_path, duration_s=0.5, rate={"rate": 400},
                       ops=[{"name": "read", "weight": 3}, {"name": "write", "weight": 1}])
    books = result.final["books"]
    assert set(books) == {"read", "write"}
    assert books["read"]["scheduled"] + books["write"]["scheduled"] == 200
    assert books["read"]["scheduled"] > books["write"]["scheduled"]
    assert result.histogram("response", "read").get_total_count() == books["read"]["ok"]
    assert result.histogram("response", "write").get_total_count() == books["write"]["ok"]
    assert {op.kind for op in result.driver.sent} == {"read", "write"}
    assert_balanced(result)


async def test_observed_samples_and_gauges_reach_the_interval_reports(tmp_path: Path) -> None:
    async def observing(drv: FakeDriver, op: Op) -> Result | None:
        assert drv.ctx is not None
        drv.ctx.completions.observe("ryw_lag", 1234)
        drv.ctx.completions.gauge("consumer_lag", float(len(drv.sent)))
        return OK

    result = await run(observing, tmp_path)
    lag = new_histogram()
    for report in result.intervals:
        if "ryw_lag" in report["extra"]:
            lag.add(decode(report["extra"]["ryw_lag"]))
    assert lag.get_total_count() == 20
    assert lag.get_count_at_value(1234) == 20
    assert result.intervals[-1]["gauges"] == {"consumer_lag": 20.0}


async def test_a_workload_picks_the_payload_and_hears_every_answered_op(tmp_path: Path) -> None:
    heard: list[tuple[str, str | None]] = []

    class Workload:
        def __init__(self, options: dict[str, Any], seed: int, process_index: int) -> None:
            self.n = 0

        def next_op(self, kind: str) -> tuple[str, Any]:
            self.n += 1
            return ("open" if self.n <= 2 else kind), {"n": self.n}

        def on_result(self, op: Op, error: str | None) -> None:
            heard.append((op.kind, error))

    async def fail_opens(drv: FakeDriver, op: Op) -> Result | None:
        return Result(error="no") if op.kind == "open" else OK

    result = await run(fail_opens, tmp_path, workload=Workload)
    assert [op.payload for op in result.driver.sent] == [{"n": i} for i in range(1, 21)]
    assert (result.books("open")["scheduled"], result.books("op")["scheduled"]) == (2, 18)
    assert sorted(heard, key=str) == sorted([("open", "no")] * 2 + [("op", None)] * 18, key=str)
    assert_balanced(result)


async def test_a_workload_is_not_told_about_timeouts(tmp_path: Path) -> None:
    heard: list[str | None] = []

    class Workload:
        def __init__(self, *args: Any) -> None:
            pass

        def next_op(self, kind: str) -> tuple[str, Any]:
            return kind, None

        def on_result(self, op: Op, error: str | None) -> None:
            heard.append(error)

    result = await run(never, tmp_path, workload=Workload, drain_timeout_s=0)
    assert result.books()["timeout"] == 20
    assert heard == []


async def test_verification_problems_and_crashes_are_reported_in_the_final_books(tmp_path: Path) -> None:
    class Checked(FakeDriver):
        behaviour = staticmethod(ok)

        async def verify(self) -> list[str]:
            raise RuntimeError("db gone")

    reports: list[dict[str, Any]] = []
    gen = Generator(GeneratorConfig(spec(), Checked, None, {}, str(tmp_path), RUN_ID), reports.append)
    await gen.start_driver()
    final = await gen.run(time.monotonic_ns(), asyncio.Event())
    assert final["problems"] == ["verification crashed: RuntimeError: db gone"]


async def test_interval_reports_cover_every_second_from_zero_without_gaps(tmp_path: Path) -> None:
    async def answer_then_linger(drv: FakeDriver, op: Op) -> Result | None:
        drv.complete(op.id)  # answered at once; the send keeps its connection a while, as clients do
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            await asyncio.sleep(0.8)  # a slow close when the run cancels it
            raise
        return None

    # the schedule ends at 0.45 s and the drain at once; the cleanup runs past the 1 s boundary
    result = await run(answer_then_linger, tmp_path, duration_s=0.5, rate={"rate": 20})
    assert result.books()["ok"] == 10
    ts = [r["t"] for r in result.intervals]
    assert ts == list(range(len(ts))), ts


# -- interruption --------------------------------------------------------------------------------------


async def test_a_stop_mid_run_ends_the_schedule_early_with_balanced_books(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def stop_after_five(drv: FakeDriver, op: Op) -> Result | None:
        if len(drv.sent) == 5:
            stop.set()
        return OK

    result = await run(stop_after_five, tmp_path, duration_s=2.0, stop=stop)
    books = result.books()
    assert result.final["interrupted"] is True
    assert 5 <= books["scheduled"] < 200
    assert books["ok"] == books["scheduled"]
    assert_balanced(result)


async def test_no_op_is_scheduled_once_stop_is_set(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def stop_at_once(drv: FakeDriver, op: Op) -> Result | None:
        stop.set()  # as Ctrl-C would, while the scheduler sleeps towards the next arrival 1 s later
        return OK

    result = await run(stop_at_once, tmp_path, duration_s=10.0, rate={"rate": 1}, stop=stop)
    assert result.final["interrupted"] is True
    assert result.books()["scheduled"] == 1


@pytest.mark.parametrize("behaviour", [ok, http_503, refuse, complete_later, never],
                         ids=["ok", "error", "raises", "async", "never"])
async def test_books_balance_whatever_the_driver_does(tmp_path: Path, behaviour: Send) -> None:
    result = await run(behaviour, tmp_path, timeout_s=0.05, drain_timeout_s=0.2, max_in_flight=10,
                       rate={"profile": "burst", "burst_ops": 15, "burst_every_s": 0.1}, duration_s=0.3)
    books = result.books()
    assert books["scheduled"] == 45
    assert_balanced(result)
