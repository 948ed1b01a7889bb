"""Supervised background tasks (harness/engine/supervise.py): none may die or stall silently."""

from __future__ import annotations

import asyncio
import logging

import pytest

from harness.engine.supervise import Supervisor


class Watch:
    """A supervisor whose failures are also collected by its `on_failure` callback."""

    def __init__(self) -> None:
        self.told: list[str] = []
        self.failed = asyncio.Event()
        self.sup = Supervisor(self.on_failure)

    def on_failure(self, reason: str) -> None:
        self.told.append(reason)
        self.failed.set()

    async def first_failure(self) -> str:
        await asyncio.wait_for(self.failed.wait(), 10)  # a safety net, not a measurement
        return self.told[0]


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_failing_tasks_error_is_reported_with_its_name() -> None:
    watch = Watch()

    async def reader() -> None:
        await asyncio.sleep(0)
        raise ConnectionResetError("broker went away")

    watch.sup.spawn(reader, "outcome-reader")
    reason = await watch.first_failure()
    assert reason == "background task 'outcome-reader' failed: ConnectionResetError: broker went away"
    assert watch.sup.failures == [reason]
    await watch.sup.stop()


async def test_a_failing_tasks_traceback_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    watch = Watch()

    async def reader() -> None:
        raise ValueError("bad record")

    with caplog.at_level(logging.ERROR, logger="harness.engine.supervise"):
        watch.sup.spawn(reader, "outcome-reader")
        await watch.first_failure()
    (record,) = caplog.records
    assert "outcome-reader" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    await watch.sup.stop()


async def test_a_task_that_ends_before_the_run_is_a_failure() -> None:
    watch = Watch()

    async def gives_up() -> None:
        await asyncio.sleep(0)

    watch.sup.spawn(gives_up, "lag-probe")
    assert await watch.first_failure() == "background task 'lag-probe' ended before the run did"
    await watch.sup.stop()


async def test_stop_cancels_running_tasks_quietly() -> None:
    watch = Watch()
    started = asyncio.Event()
    cancelled: list[str] = []

    async def run() -> None:
        started.set()
        try:
            await forever()
        except asyncio.CancelledError:
            cancelled.append("deliveries")
            raise

    watch.sup.spawn(run, "deliveries")
    watch.sup.spawn(forever, "ticker")
    await started.wait()
    await watch.sup.stop()
    assert cancelled == ["deliveries"]
    assert watch.sup.failures == []
    assert watch.told == []


async def test_a_task_that_returns_when_stop_cancels_it_is_not_a_failure() -> None:
    watch = Watch()
    started = asyncio.Event()

    async def polite() -> None:
        started.set()
        try:
            await forever()
        except asyncio.CancelledError:
            return  # swallows the cancellation and ends: expected at stop

    watch.sup.spawn(polite, "poller")
    await started.wait()
    await watch.sup.stop()
    assert watch.sup.failures == []


async def test_failures_are_kept_without_a_callback() -> None:
    sup = Supervisor()

    async def boom() -> None:
        raise RuntimeError("x")

    sup.spawn(boom, "t")
    for _ in range(100):
        if sup.failures:
            break
        await asyncio.sleep(0)
    assert sup.failures == ["background task 't' failed: RuntimeError: x"]
    await sup.stop()


async def test_each_failing_task_is_reported() -> None:
    watch = Watch()

    async def boom_a() -> None:
        raise RuntimeError("a")

    async def boom_b() -> None:
        raise RuntimeError("b")

    watch.sup.spawn(boom_a, "a")
    watch.sup.spawn(boom_b, "b")
    for _ in range(100):
        if len(watch.told) == 2:
            break
        await asyncio.sleep(0)
    assert sorted(watch.told) == ["background task 'a' failed: RuntimeError: a",
                                  "background task 'b' failed: RuntimeError: b"]
    await watch.sup.stop()
