"""One generator process (harness/engine/loadgen.py) against in-process fake drivers.

Outcomes, books, timeouts, warm-up, where latency is measured from, the driver's view of the seam
(async and plain `send`, `send_batch`, completions, supervised background tasks) and interruption.
The fake drivers isolate the generator's own logic; the real transports are covered by the
integration tests. Runs take a fraction of a second of real time, but no assertion depends on how
long anything took.
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
from harness.engine.loadgen import GeneratorConfig, LoadGenerator
from harness.protocol import OK, DriverContext, Op, Result, check_driver
from harness.results.hdr import merge, new_histogram
from harness.results.messages import FinalReport, IntervalReport
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

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        assert self.ctx is not None
        self.ctx.completions.complete(op_id, error, completed_ns)


def driver(behaviour: Send) -> type[FakeDriver]:
    return type("Fake", (FakeDriver,), {"behaviour": staticmethod(behaviour)})


@dataclass
class Run:
    final: FinalReport
    intervals: list[IntervalReport]
    driver: Any
    gen: LoadGenerator

    def books(self, kind: str = "op") -> dict[str, Any]:
        return self.final.books[kind]

    def histogram(self, metric: str, kind: str = "op") -> HdrHistogram:
        """All interval histograms of `metric` ("response" or "service") of one kind, merged."""
        parts = [getattr(r.kinds[kind], metric) for r in self.intervals if kind in r.kinds]
        merged = merge(parts)
        return merged.histogram() if merged is not None else new_histogram()

    def extra(self, metric: str) -> HdrHistogram:
        merged = merge([r.extra.get(metric) for r in self.intervals])
        return merged.histogram() if merged is not None else new_histogram()

    def interval_sum(self, key: str) -> int:
        return sum(r.counts.get(key, 0) for r in self.intervals)


def spec(**overrides: Any) -> Any:
    data: dict[str, Any] = {"name": "gen-test", "target": "fake", "duration_s": 0.2, "warmup_s": 0,
                            "timeout_s": 5, "drain_timeout_s": 2, "rate": {"rate": 100}}
    data.update(overrides)
    return parse_spec(data)


def generator(driver_cls: type, tmp_path: Path, workload: Any = None, index: int = 0, count: int = 1,
              launched: dict[str, Any] | None = None, **overrides: Any) -> tuple[LoadGenerator, list[Any]]:
    reports: list[Any] = []
    cfg = GeneratorConfig(spec(**overrides), check_driver(driver_cls), workload, {"kafka": "k:9092"},
                          str(tmp_path), RUN_ID, index, count, launched or {})
    return LoadGenerator(cfg, reports.append), reports


async def run_driver(driver_cls: type, tmp_path: Path, workload: Any = None, stop: asyncio.Event | None = None,
                     index: int = 0, count: int = 1, **overrides: Any) -> Run:
    gen, reports = generator(driver_cls, tmp_path, workload, index, count, **overrides)
    await gen.start_driver()
    try:
        final = await gen.run(time.monotonic_ns() + 5_000_000, stop or asyncio.Event())
    finally:
        await gen.stop_driver()
    assert reports[-1] is final
    return Run(final, [r for r in reports if isinstance(r, IntervalReport)], gen.driver, gen)


async def run(behaviour: Send, tmp_path: Path, workload: Any = None, stop: asyncio.Event | None = None,
              **overrides: Any) -> Run:
    result = await run_driver(driver(behaviour), tmp_path, workload, stop, **overrides)
    assert result.driver.stopped
    return result


def assert_balanced(result: Run) -> None:
    for kind, books in result.final.books.items():
        assert balanced(books), f"{kind}: {books}"


def outcomes(books: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return books["scheduled"], books["ok"], books["error"], books["timeout"], books["not_sent"]


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
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert len(result.driver.sent) == 20
    assert result.histogram("response").get_total_count() == 20
    assert result.histogram("service").get_total_count() == 20
    assert result.final.interrupted is False
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


async def test_a_send_raising_after_it_suspended_counts_as_error(tmp_path: Path) -> None:
    async def reset_later(drv: FakeDriver, op: Op) -> Result | None:
        await asyncio.sleep(0)
        raise ConnectionResetError

    result = await run(reset_later, tmp_path)
    assert result.books()["errors"] == {"ConnectionResetError": 20}
    assert_balanced(result)


async def test_a_send_that_suspends_before_answering_counts_as_ok(tmp_path: Path) -> None:
    result = await run(slow_ok, tmp_path)
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert_balanced(result)


async def test_asynchronous_completion_through_completions_counts_as_ok(tmp_path: Path) -> None:
    result = await run(complete_later, tmp_path)
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert result.histogram("response").get_total_count() == 20
    assert result.final.late == 0
    assert_balanced(result)


async def test_asynchronous_error_completion_counts_as_error(tmp_path: Path) -> None:
    async def fail_later(drv: FakeDriver, op: Op) -> Result | None:
        asyncio.get_running_loop().call_soon(drv.complete, op.id, "rejected")
        return None

    result = await run(fail_later, tmp_path)
    assert (result.books()["error"], result.books()["errors"]) == (20, {"rejected": 20})
    assert_balanced(result)


async def test_a_completion_reported_during_send_counts_as_ok(tmp_path: Path) -> None:
    async def complete_at_once(drv: FakeDriver, op: Op) -> Result | None:
        drv.complete(op.id)  # e.g. a cached answer, reported before send returns None
        return None

    result = await run(complete_at_once, tmp_path)
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert (result.final.late, result.gen.in_flight.live) == (0, 0)
    assert_balanced(result)


async def test_a_carried_op_answered_through_completions_is_ok_and_its_coroutine_is_cancelled(
        tmp_path: Path) -> None:
    cancelled: list[int] = []

    async def answer_elsewhere(drv: FakeDriver, op: Op) -> Result | None:
        asyncio.get_running_loop().call_later(0.005, drv.complete, op.id)
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(op.id)
            raise
        return None

    result = await run(answer_elsewhere, tmp_path)
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert sorted(cancelled) == list(range(20))
    assert_balanced(result)


async def test_ops_that_never_complete_become_timeouts(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=0.05, drain_timeout_s=0.5)
    books = result.books()
    assert outcomes(books) == (20, 0, 0, 20, 0)
    assert books["measured"]["timeout"] == 20
    assert_balanced(result)


async def test_timeouts_count_in_the_response_time_at_no_less_than_the_timeout(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=0.05, drain_timeout_s=0.5)
    resp = result.histogram("response")
    assert resp.get_total_count() == 20, "a system slower than the timeout cannot pass a latency goal"
    assert resp.min_value >= 50_000, "the raw smallest sample"
    assert result.histogram("service").get_total_count() == 20


async def test_a_stuck_coroutine_is_cancelled_when_its_op_times_out(tmp_path: Path) -> None:
    cancelled: list[int] = []

    async def stuck(drv: FakeDriver, op: Op) -> Result | None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(op.id)
            raise
        return OK

    result = await run(stuck, tmp_path, timeout_s=0.05, drain_timeout_s=0.5)
    assert outcomes(result.books()) == (20, 0, 0, 20, 0)
    assert sorted(cancelled) == list(range(20)), "the driver must not keep working for a written-off op"


async def test_a_synchronous_answer_later_than_the_timeout_is_a_timeout_never_ok(tmp_path: Path) -> None:
    async def late(drv: FakeDriver, op: Op) -> Result | None:
        return Result(completed_ns=op.intended_ns + 60_000_000)  # 10 ms past the 50 ms timeout

    result = await run(late, tmp_path, timeout_s=0.05)
    assert outcomes(result.books()) == (20, 0, 0, 20, 0)
    resp = result.histogram("response")
    assert resp.get_count_at_value(60_000) == 20, "counted at its real completion, past the timeout"
    assert_balanced(result)


async def test_an_op_answered_at_once_but_after_its_timeout_is_a_timeout(tmp_path: Path) -> None:
    async def blocking(drv: FakeDriver, op: Op) -> Result | None:
        time.sleep(0.06)  # noqa: ASYNC251 - a send that blocks the loop past the 50 ms timeout, then says ok
        return OK

    result = await run(blocking, tmp_path, timeout_s=0.05, rate={"profile": "burst", "burst_ops": 3},
                       duration_s=0.1)
    assert outcomes(result.books()) == (3, 0, 0, 3, 0)
    assert result.histogram("response").min_value >= 60_000
    assert_balanced(result)


async def test_an_asynchronous_completion_later_than_the_timeout_is_a_timeout(tmp_path: Path) -> None:
    async def complete_late(drv: FakeDriver, op: Op) -> Result | None:
        # reported at once, long before the sweep would expire it, but stamped 20 ms past the 1 s timeout
        asyncio.get_running_loop().call_soon(drv.complete, op.id, None, op.intended_ns + 1_020_000_000)
        return None

    result = await run(complete_late, tmp_path, timeout_s=1)
    assert outcomes(result.books()) == (20, 0, 0, 20, 0)
    assert result.histogram("response").get_count_at_value(1_020_000) == 20, "counted at its completion"
    assert_balanced(result)


async def test_ops_still_in_flight_when_the_drain_gives_up_are_timeouts(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=60, drain_timeout_s=0)
    assert outcomes(result.books()) == (20, 0, 0, 20, 0)
    assert_balanced(result)


async def test_ops_written_off_at_the_end_count_at_no_less_than_the_timeout(tmp_path: Path) -> None:
    result = await run(never, tmp_path, timeout_s=2, drain_timeout_s=0)
    resp = result.histogram("response")
    assert resp.get_total_count() == 20
    assert resp.min_value >= 2_000_000, "cutting the drain short must not make the percentiles better"


async def test_timeouts_are_counted_while_the_run_goes_on(tmp_path: Path) -> None:
    result = await run(never, tmp_path, duration_s=1.5, rate={"rate": 20}, timeout_s=0.05, drain_timeout_s=0.5)
    during = sum(r.counts.get("timeout", 0) for r in result.intervals if not r.final)
    assert during > 0, "the sweeper expires ops past timeout_s before the end of the run"
    assert result.books()["timeout"] == 30
    assert_balanced(result)


async def test_a_completion_after_the_timeout_is_counted_late_not_as_a_second_outcome(tmp_path: Path) -> None:
    ids: list[int] = []

    async def keep(drv: FakeDriver, op: Op) -> Result | None:
        ids.append(op.id)
        return None

    gen, _ = generator(driver(keep), tmp_path, timeout_s=60, drain_timeout_s=0)
    await gen.start_driver()
    final = await gen.run(time.monotonic_ns(), asyncio.Event())
    for op_id in ids:  # the driver reports them after the run gave up on them
        gen.driver.complete(op_id)
    gen.driver.complete(10_000)  # an id that was never scheduled
    await gen.stop_driver()
    assert final.books["op"]["timeout"] == 20
    assert gen.late == 21
    assert gen.books.ok == [0]


async def test_a_second_completion_of_the_same_op_is_counted_late(tmp_path: Path) -> None:
    async def twice(drv: FakeDriver, op: Op) -> Result | None:
        drv.complete(op.id)
        return OK  # the synchronous result finishes the same op again

    result = await run(twice, tmp_path)
    assert (result.books()["ok"], result.final.late) == (20, 20)
    assert_balanced(result)


async def test_the_in_flight_cap_gives_not_sent_with_its_reason(tmp_path: Path) -> None:
    # one burst of 20 ops at the same instant against a driver that never answers: 5 go, 15 are refused
    result = await run(never, tmp_path, max_in_flight=5, rate={"profile": "burst", "burst_ops": 20},
                       drain_timeout_s=0)
    books = result.books()
    assert outcomes(books) == (20, 0, 0, 5, 15)
    assert books["not_sent_reasons"] == {"in_flight_cap": 15}
    assert len(result.driver.sent) == 5
    assert_balanced(result)


async def test_a_burst_larger_than_the_ring_keeps_every_op_in_the_books(tmp_path: Path) -> None:
    # max_in_flight 1,000 gives a ring of 1,024 slots; 3,000 ops due at once must not share slots
    result = await run(never, tmp_path, max_in_flight=1_000, rate={"profile": "burst", "burst_ops": 3_000},
                       duration_s=0.1, drain_timeout_s=0)
    assert outcomes(result.books()) == (3_000, 0, 0, 1_000, 2_000)
    assert result.gen.in_flight.live == 0
    assert_balanced(result)


async def test_the_cap_does_not_refuse_ops_that_complete_synchronously(tmp_path: Path) -> None:
    result = await run(ok, tmp_path, max_in_flight=5, rate={"profile": "burst", "burst_ops": 20})
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)


async def test_interval_counts_add_up_to_the_books(tmp_path: Path) -> None:
    result = await run(never, tmp_path, max_in_flight=5, rate={"profile": "burst", "burst_ops": 20},
                       drain_timeout_s=0)
    books = result.books()
    for key in ("scheduled", "ok", "error", "timeout", "not_sent"):
        assert result.interval_sum(key) == books[key], key
    assert result.interval_sum("sent") == books["scheduled"] - books["not_sent"]


@pytest.mark.parametrize("behaviour", [ok, http_503, refuse, complete_later, never, slow_ok],
                         ids=["ok", "error", "raises", "async", "never", "suspends"])
async def test_books_balance_whatever_the_driver_does(tmp_path: Path, behaviour: Send) -> None:
    result = await run(behaviour, tmp_path, timeout_s=0.05, drain_timeout_s=0.2, max_in_flight=10,
                       rate={"profile": "burst", "burst_ops": 15, "burst_every_s": 0.1}, duration_s=0.3)
    assert result.books()["scheduled"] == 45
    assert_balanced(result)


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
    assert result.histogram("response").get_total_count() == 5, "only the measured timeouts are recorded"
    assert_balanced(result)


# -- where latency is measured from --------------------------------------------------------------------


async def test_response_time_is_measured_from_the_intended_start(tmp_path: Path) -> None:
    result = await run(done_7ms_after_intended, tmp_path)
    resp = result.histogram("response")
    assert resp.get_total_count() == 20
    assert resp.get_count_at_value(7_000) == 20, "every response is exactly completion - intended"


async def test_service_time_is_measured_from_the_actual_send(tmp_path: Path) -> None:
    result = await run(done_3ms_after_sent, tmp_path)
    assert result.histogram("service").get_count_at_value(3_000) == 20, "every service time is completion - sent"
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


async def test_the_schedule_lag_is_recorded_for_every_op_sent(tmp_path: Path) -> None:
    result = await run(ok, tmp_path)
    lag = merge([r.lag for r in result.intervals])
    assert lag is not None and lag.total == 20


# -- the driver's view ---------------------------------------------------------------------------------


async def test_op_ids_are_the_global_schedule_index(tmp_path: Path) -> None:
    result = await run(ok, tmp_path)
    assert [op.id for op in result.driver.sent] == list(range(20))
    assert all(isinstance(op.id, int) for op in result.driver.sent)


async def test_the_driver_gets_its_options_services_and_run_in_its_context(tmp_path: Path) -> None:
    result = await run_driver(driver(ok), tmp_path, target_options={"answer": 42}, timeout_s=3)
    ctx = result.driver.ctx
    assert ctx is not None
    assert (ctx.options, ctx.services, ctx.run_dir, ctx.run_id) == ({"answer": 42}, {"kafka": "k:9092"},
                                                                    str(tmp_path), RUN_ID)
    assert (ctx.process_index, ctx.process_count, ctx.timeout_s) == (0, 1, 3.0)


async def test_what_the_targets_launch_returned_is_merged_into_the_options(tmp_path: Path) -> None:
    gen, _ = generator(driver(ok), tmp_path, target_options={"a": 1}, launched={"url": "http://127.0.0.1:9"})
    await gen.start_driver()
    await gen.stop_driver()
    assert gen.driver.ctx.options == {"a": 1, "url": "http://127.0.0.1:9"}


async def test_process_i_of_n_sends_ids_i_i_plus_n_and_so_on(tmp_path: Path) -> None:
    result = await run_driver(driver(complete_later), tmp_path, index=1, count=2, rate={"rate": 200})
    ctx = result.driver.ctx
    assert (ctx.process_index, ctx.process_count) == (1, 2)
    assert [op.id for op in result.driver.sent] == list(range(1, 40, 2))
    assert outcomes(result.books()) == (20, 20, 0, 0, 0), "asynchronous completions find their ops"
    assert result.final.process == 1


async def test_ops_follow_the_mix_and_each_kind_has_balanced_books(tmp_path: Path) -> None:
    result = await run(ok, tmp_path, duration_s=0.5, rate={"rate": 400},
                       ops=[{"name": "read", "weight": 3}, {"name": "write", "weight": 1}])
    books = result.final.books
    assert set(books) == {"read", "write"}
    assert books["read"]["scheduled"] + books["write"]["scheduled"] == 200
    assert books["read"]["scheduled"] > books["write"]["scheduled"]
    assert result.histogram("response", "read").get_total_count() == books["read"]["ok"]
    assert result.histogram("response", "write").get_total_count() == books["write"]["ok"]
    assert {op.kind for op in result.driver.sent} == {"read", "write"}
    assert_balanced(result)


async def test_the_mix_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    mix = [{"name": "read", "weight": 3}, {"name": "write", "weight": 1}]
    first = await run(ok, tmp_path, rate={"rate": 200}, ops=mix, seed=5)
    again = await run(ok, tmp_path, rate={"rate": 200}, ops=mix, seed=5)
    assert [op.kind for op in first.driver.sent] == [op.kind for op in again.driver.sent]


async def test_complete_many_finishes_several_ops_at_one_instant(tmp_path: Path) -> None:
    class Batched(FakeDriver):
        behaviour = staticmethod(never)

        async def start(self, ctx: DriverContext) -> None:
            self.ctx = ctx
            ctx.background(self.acks, "acks")

        async def acks(self) -> None:
            assert self.ctx is not None
            while True:
                await asyncio.sleep(0.01)
                if self.sent:
                    ops, self.sent = self.sent, []
                    done = max(op.intended_ns for op in ops) + 1_000_000
                    self.ctx.completions.complete_many([op.id for op in ops], done)

    result = await run_driver(Batched, tmp_path)
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert_balanced(result)


async def test_complete_many_books_each_ops_own_error(tmp_path: Path) -> None:
    async def pairs(drv: FakeDriver, op: Op) -> Result | None:
        if op.id % 2:  # every odd op completes itself and its even predecessor
            assert drv.ctx is not None
            asyncio.get_running_loop().call_soon(drv.ctx.completions.complete_many, [op.id - 1, op.id], None,
                                                 ["rejected", None])
        return None

    result = await run(pairs, tmp_path)
    books = result.books()
    assert (books["ok"], books["error"], books["errors"]) == (10, 10, {"rejected": 10})
    assert_balanced(result)


async def test_observed_samples_and_gauges_reach_the_interval_reports(tmp_path: Path) -> None:
    async def observing(drv: FakeDriver, op: Op) -> Result | None:
        assert drv.ctx is not None
        drv.ctx.completions.observe("ryw_lag", 1234)
        drv.ctx.completions.gauge("consumer_lag", float(len(drv.sent)))
        return OK

    result = await run(observing, tmp_path)
    lag = result.extra("ryw_lag")
    assert (lag.get_total_count(), lag.get_count_at_value(1234)) == (20, 20)
    assert result.intervals[-1].gauges == {"consumer_lag": 20.0}


async def test_expected_deliveries_reach_the_final_report(tmp_path: Path) -> None:
    async def expecting(drv: FakeDriver, op: Op) -> Result | None:
        assert drv.ctx is not None
        drv.ctx.completions.expect("outcome")
        if op.id % 2 == 0:
            drv.ctx.completions.expect("audit", 2)
        return OK

    result = await run(expecting, tmp_path)
    assert result.final.expected == {"outcome": 20, "audit": 20}


async def test_a_driver_with_send_batch_gets_every_due_op_in_batches(tmp_path: Path) -> None:
    class Batch(FakeDriver):
        behaviour = staticmethod(ok)

        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[int]] = []

        def send_batch(self, ops: list[Op]) -> None:
            assert self.ctx is not None
            self.batches.append([op.id for op in ops])
            asyncio.get_running_loop().call_soon(self.ctx.completions.complete_many, [op.id for op in ops])

    result = await run_driver(Batch, tmp_path, rate={"profile": "burst", "burst_ops": 10, "burst_every_s": 0.1})
    assert result.driver.sent == [], "send is not called when send_batch exists"
    assert result.driver.batches == [list(range(0, 10)), list(range(10, 20))]
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)
    assert_balanced(result)


class AckedInLongBatches(FakeDriver):
    """A batch driver whose transport acknowledges everything sent so far every 2 ms, at one instant
    per batch, `ack_after_ns` after the batch's last send; it notes each op's truth."""

    behaviour = staticmethod(ok)
    ack_after_ns = 1_000_000

    def __init__(self) -> None:
        super().__init__()
        self.waiting: list[Op] = []
        self.truth: list[tuple[int, int, int]] = []  # (intended, sent, completed) per acked op
        self.batch_sizes: list[int] = []

    async def start(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        ctx.background(self.acks, "acks")

    def send_batch(self, ops: list[Op]) -> None:
        self.batch_sizes.append(len(ops))
        self.waiting += ops

    async def acks(self) -> None:
        assert self.ctx is not None
        while True:
            await asyncio.sleep(0.002)
            if self.waiting:
                ops, self.waiting = self.waiting, []
                # never before a send: on a loaded machine a pass goes out later than its last
                # intended start, and an ack that preceded its send would be a negative service time
                done = max(op.sent_ns for op in ops) + self.ack_after_ns
                self.truth += [(op.intended_ns, op.sent_ns, done) for op in ops]
                self.ctx.completions.complete_many([op.id for op in ops], done)


FAST = {"rate": {"rate": 100_000}, "duration_s": 0.1, "warmup_s": 0.02}


async def test_long_passes_and_long_ack_batches_book_exactly_each_ops_own_latency(tmp_path: Path) -> None:
    """The whole-pass send and the array booking of acknowledgements give, op for op, the histograms
    the driver's own record of intended, sent and completed instants gives."""
    result = await run_driver(AckedInLongBatches, tmp_path, **FAST)
    drv, gen = result.driver, result.gen
    assert max(drv.batch_sizes) >= 32, "the run took the long-pass path"
    warm_end = gen.warmup_end_ns
    measured = [t for t in drv.truth if t[0] >= warm_end]
    books = result.books()
    assert outcomes(books) == (12_000, 12_000, 0, 0, 0)
    assert books["measured"]["ok"] == len(measured)
    for metric, values in (("response", [(d - i) // 1000 for i, _, d in measured]),
                           ("service", [(d - s) // 1000 for _, s, d in measured])):
        truth = new_histogram()
        for v in values:
            truth.record_value(v)
        assert result.histogram(metric).encode() == truth.encode(), metric
    lag_truth = new_histogram()
    for i, s, _ in drv.truth:
        lag_truth.record_value((s - i) // 1000)
    lag = merge([r.lag for r in result.intervals])
    assert lag is not None and lag.histogram().encode() == lag_truth.encode()
    assert_balanced(result)


async def test_acknowledgements_later_than_the_timeout_in_a_long_batch_are_timeouts(tmp_path: Path) -> None:
    class LateAcks(AckedInLongBatches):
        ack_after_ns = 200_000_000  # the timeout is 50 ms

    result = await run_driver(LateAcks, tmp_path, timeout_s=0.05, **FAST)
    books = result.books()
    assert (books["ok"], books["timeout"], books["scheduled"]) == (0, 12_000, 12_000)
    assert_balanced(result)


async def test_a_send_batch_that_raises_fails_every_op_of_the_batch(tmp_path: Path) -> None:
    class Broken(FakeDriver):
        behaviour = staticmethod(ok)

        def send_batch(self, ops: list[Op]) -> None:
            raise BufferError("queue full")

    result = await run_driver(Broken, tmp_path)
    assert result.books()["errors"] == {"BufferError": 20}
    assert_balanced(result)


async def test_a_driver_that_clears_send_batch_in_start_is_sent_op_by_op(tmp_path: Path) -> None:
    class PerOp(FakeDriver):
        behaviour = staticmethod(ok)

        async def start(self, ctx: DriverContext) -> None:
            self.ctx = ctx
            self.send_batch = None  # this run's transport has no batch path

        def send_batch(self, ops: list[Op]) -> None:
            raise AssertionError("not to be called")

    result = await run_driver(PerOp, tmp_path)
    assert len(result.driver.sent) == 20
    assert outcomes(result.books()) == (20, 20, 0, 0, 0)


async def test_a_plain_def_send_works(tmp_path: Path) -> None:
    class Plain:
        def __init__(self) -> None:
            self.ctx: DriverContext | None = None
            self.stopped = False

        async def start(self, ctx: DriverContext) -> None:
            self.ctx = ctx

        def send(self, op: Op) -> Result | None:
            if op.id % 4 == 0:
                raise ConnectionRefusedError
            if op.id % 4 == 1:
                return Result(error="http_500")
            if op.id % 4 == 2:
                assert self.ctx is not None
                asyncio.get_running_loop().call_soon(self.ctx.completions.complete, op.id)
                return None
            return OK

        async def stop(self) -> None:
            self.stopped = True

    result = await run_driver(Plain, tmp_path)
    books = result.books()
    assert (books["ok"], books["errors"]) == (10, {"ConnectionRefusedError": 5, "http_500": 5})
    assert result.driver.stopped
    assert_balanced(result)


async def test_a_failing_background_task_stops_the_run_and_is_named_in_the_problems(tmp_path: Path) -> None:
    class Reader(FakeDriver):
        behaviour = staticmethod(never)

        async def start(self, ctx: DriverContext) -> None:
            self.ctx = ctx
            ctx.background(self.read, "outcome-reader")

        async def read(self) -> None:
            while not self.sent:
                await asyncio.sleep(0.005)
            raise ConnectionResetError("broker went away")

    result = await run_driver(Reader, tmp_path, duration_s=10, rate={"rate": 10}, timeout_s=60, drain_timeout_s=0)
    assert "background task 'outcome-reader' failed: ConnectionResetError: broker went away" in result.final.problems
    assert result.final.interrupted is True
    assert result.books()["scheduled"] < 100, "the schedule stopped"
    assert_balanced(result)


async def test_a_background_task_that_ends_early_is_a_problem(tmp_path: Path) -> None:
    class Quitter(FakeDriver):
        behaviour = staticmethod(ok)

        async def start(self, ctx: DriverContext) -> None:
            self.ctx = ctx

            async def done() -> None:
                return None

            ctx.background(done, "poller")

    result = await run_driver(Quitter, tmp_path)
    assert "background task 'poller' ended before the run did" in result.final.problems


async def test_the_drivers_pids_reach_the_final_report(tmp_path: Path) -> None:
    class WithPids(FakeDriver):
        behaviour = staticmethod(ok)
        pids: ClassVar[dict[str, int]] = {"echo-server": 4242}

    assert (await run_driver(WithPids, tmp_path)).final.pids == {"echo-server": 4242}


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


async def test_a_workload_is_built_from_its_options_seed_and_process(tmp_path: Path) -> None:
    built: list[tuple[dict[str, Any], int, int]] = []

    class Workload:
        def __init__(self, options: dict[str, Any], seed: int, process_index: int) -> None:
            built.append((options, seed, process_index))

        def next_op(self, kind: str) -> tuple[str, Any]:
            return kind, None

        def on_result(self, op: Op, error: str | None) -> None:
            pass

    await run_driver(driver(ok), tmp_path, Workload, index=1, count=2, seed=9, workload_options={"accounts": 5})
    assert built == [({"accounts": 5}, 9, 1)]


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


async def test_the_workloads_verification_problems_are_reported(tmp_path: Path) -> None:
    class Workload:
        def __init__(self, *args: Any) -> None:
            pass

        def next_op(self, kind: str) -> tuple[str, Any]:
            return kind, None

        def on_result(self, op: Op, error: str | None) -> None:
            pass

        async def verify(self, driver: Any) -> list[str]:
            return [f"{len(driver.sent)} sent, 1 missing from the ledger"]

    result = await run(ok, tmp_path, workload=Workload)
    assert result.final.problems == ["20 sent, 1 missing from the ledger"]


async def test_the_drivers_verification_problems_are_reported(tmp_path: Path) -> None:
    class Checked(FakeDriver):
        behaviour = staticmethod(ok)

        async def verify(self) -> list[str]:
            return ["balance mismatch on A1"]

    assert (await run_driver(Checked, tmp_path)).final.problems == ["balance mismatch on A1"]


async def test_a_verification_crash_is_reported_as_a_problem(tmp_path: Path) -> None:
    class Checked(FakeDriver):
        behaviour = staticmethod(ok)

        async def verify(self) -> list[str]:
            raise RuntimeError("db gone")

    result = await run_driver(Checked, tmp_path)
    assert result.final.problems == ["verification crashed: RuntimeError: db gone"]


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
    ts = [r.t for r in result.intervals]
    assert ts == list(range(len(ts))), ts
    assert [r.final for r in result.intervals] == [False] * (len(ts) - 1) + [True]
    assert_balanced(result)


# -- interruption --------------------------------------------------------------------------------------


async def test_a_stop_mid_run_ends_the_schedule_early_with_balanced_books(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def stop_after_five(drv: FakeDriver, op: Op) -> Result | None:
        if len(drv.sent) == 5:
            stop.set()
        return OK

    result = await run(stop_after_five, tmp_path, duration_s=2.0, stop=stop)
    books = result.books()
    assert result.final.interrupted is True
    assert 5 <= books["scheduled"] < 200
    assert books["ok"] == books["scheduled"]
    assert_balanced(result)


async def test_no_op_is_scheduled_once_stop_is_set(tmp_path: Path) -> None:
    stop = asyncio.Event()

    async def stop_at_once(drv: FakeDriver, op: Op) -> Result | None:
        stop.set()  # as Ctrl-C would, while the scheduler sleeps towards the next arrival 1 s later
        return OK

    result = await run(stop_at_once, tmp_path, duration_s=10.0, rate={"rate": 1}, stop=stop)
    assert result.final.interrupted is True
    assert result.books()["scheduled"] == 1
