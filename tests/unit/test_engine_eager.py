"""Eager stepping of `send` coroutines (harness/engine/eager.py): a Task only for a coroutine that suspends.

Whatever the coroutine asks of `asyncio.current_task()` before it suspends is the Task that carries it
on, so timers that cancel "the current task" (asyncio.timeout, aiohttp's) hit the carrier, never the
caller: the scheduler's own task must never be cancelled by a driver's timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness.engine.eager import AVAILABLE, EagerRunner

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="this Python's asyncio has no _enter_task/_leave_task")


@pytest.fixture
async def runner() -> AsyncIterator[EagerRunner]:
    r = EagerRunner(asyncio.get_running_loop())
    yield r
    r.close()


async def at_once(value: Any) -> Any:
    return value


async def after_a_turn(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


class AiohttpLikeTimer:
    """What aiohttp's TimerContext does: cancel the task current at entry when the time is up."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.fired = False

    def __enter__(self) -> AiohttpLikeTimer:
        task = asyncio.current_task()
        assert task is not None

        def fire() -> None:
            self.fired = True
            task.cancel()

        self.handle = asyncio.get_running_loop().call_later(self.delay_s, fire)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.handle.cancel()
        if exc_type is asyncio.CancelledError and self.fired:
            raise TimeoutError from None


async def test_a_coroutine_that_returns_at_once_gives_its_result_and_no_task(runner: EagerRunner) -> None:
    assert runner.step(at_once(42)) == (42, None)
    assert runner.carried == 0


async def test_a_coroutine_that_suspends_is_carried_on_by_a_task_with_the_same_result(runner: EagerRunner) -> None:
    result, task = runner.step(after_a_turn(7))
    assert result is None
    assert isinstance(task, asyncio.Task)
    assert await task == 7
    assert runner.carried == 1


async def test_a_coroutine_waiting_on_a_future_gets_its_value(runner: EagerRunner) -> None:
    fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def wait() -> str:
        return "got " + await fut

    _, task = runner.step(wait())
    assert task is not None
    fut.set_result("it")
    assert await task == "got it"


async def test_current_task_in_the_synchronous_part_is_the_carrier_that_continues_it(runner: EagerRunner) -> None:
    seen: list[asyncio.Task[Any] | None] = []

    async def look() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)
        seen.append(asyncio.current_task())

    caller = asyncio.current_task()
    _, task = runner.step(look())
    assert asyncio.current_task() is caller, "the caller's task has its place back"
    assert task is not None
    await task
    assert seen == [task, task]
    assert task is not caller


async def test_the_callers_task_is_current_again_after_a_coroutine_that_finished(runner: EagerRunner) -> None:
    caller = asyncio.current_task()
    runner.step(at_once(1))
    assert asyncio.current_task() is caller


async def test_several_coroutines_can_be_stepped_between_begin_and_end(runner: EagerRunner) -> None:
    runner.begin()
    try:
        results = [runner.step_entered(at_once(1)), runner.step_entered(after_a_turn(2)),
                   runner.step_entered(at_once(3)), runner.step_entered(after_a_turn(4))]
    finally:
        runner.end()
    assert [(r, t is None) for r, t in results] == [(1, True), (None, False), (3, True), (None, False)]
    carriers = [t for _, t in results if t is not None]
    assert carriers[0] is not carriers[1], "each suspended coroutine has its own carrier"
    assert await asyncio.gather(*carriers) == [2, 4]


async def test_asyncio_timeout_inside_the_coroutine_times_it_out_not_the_caller(runner: EagerRunner) -> None:
    async def stuck() -> str:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(30)
        return "never"

    _, task = runner.step(stuck())
    assert task is not None
    with pytest.raises(TimeoutError):
        await task
    caller = asyncio.current_task()
    assert caller is not None and caller.cancelling() == 0
    await asyncio.sleep(0.02)  # the caller goes on: nothing was aimed at it


async def test_asyncio_timeout_that_does_not_expire_lets_the_result_through(runner: EagerRunner) -> None:
    async def quick() -> str:
        async with asyncio.timeout(30):
            await asyncio.sleep(0)
        return "done"

    _, task = runner.step(quick())
    assert task is not None
    assert await task == "done"
    assert not task.cancelled()


async def test_an_asyncio_timeout_left_at_once_never_fires_at_the_caller(runner: EagerRunner) -> None:
    async def quick() -> str:
        async with asyncio.timeout(0.005):  # noqa: ASYNC100 - a timer set and left without suspending
            return "done"

    assert runner.step(quick()) == ("done", None)
    await asyncio.sleep(0.02)  # past the deadline: a stray timer would cancel this test's task here
    caller = asyncio.current_task()
    assert caller is not None and caller.cancelling() == 0


async def test_an_aiohttp_like_timer_times_the_coroutine_out_not_the_caller(runner: EagerRunner) -> None:
    timer = AiohttpLikeTimer(0.01)

    async def request() -> str:
        with timer:
            await asyncio.sleep(30)
        return "never"

    _, task = runner.step(request())
    assert task is not None
    with pytest.raises(TimeoutError):
        await task
    assert timer.fired
    caller = asyncio.current_task()
    assert caller is not None and caller.cancelling() == 0
    await asyncio.sleep(0.02)


async def test_an_exception_in_the_synchronous_part_propagates(runner: EagerRunner) -> None:
    async def refuse() -> None:
        raise ConnectionRefusedError("nobody listening")

    caller = asyncio.current_task()
    with pytest.raises(ConnectionRefusedError, match="nobody listening"):
        runner.step(refuse())
    assert asyncio.current_task() is caller
    assert runner.step(at_once("next")) == ("next", None), "the runner is still usable"


async def test_an_exception_after_suspending_is_the_tasks_exception(runner: EagerRunner) -> None:
    async def fail_later() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad answer")

    _, task = runner.step(fail_later())
    assert task is not None
    with pytest.raises(ValueError, match="bad answer"):
        await task


async def test_a_failed_future_raises_inside_the_coroutine_where_it_can_be_caught(runner: EagerRunner) -> None:
    fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def wait() -> str:
        try:
            return await fut
        except OSError as exc:
            return f"handled {exc}"

    _, task = runner.step(wait())
    assert task is not None
    fut.set_exception(OSError("reset"))
    assert await task == "handled reset"


async def test_cancelling_the_carrier_cancels_the_coroutine_at_its_await(runner: EagerRunner) -> None:
    reached: list[str] = []

    async def wait_forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            reached.append("cancelled at the await")
            raise

    _, task = runner.step(wait_forever())
    assert task is not None
    await asyncio.sleep(0)  # the carrier takes the coroutine over
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert reached == ["cancelled at the await"]
    assert task.cancelled()


async def test_a_carrier_cancelled_before_it_ran_still_cancels_the_coroutine_at_its_await(
        runner: EagerRunner) -> None:
    reached: list[str] = []

    async def wait_forever() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            reached.append("cancelled at the await")
            raise

    runner.begin()
    try:
        _, first = runner.step_entered(wait_forever())
        _, second = runner.step_entered(wait_forever())  # its carrier was made during this loop turn
    finally:
        runner.end()
    assert first is not None and second is not None
    assert second.cancel()  # e.g. the op was answered through completions in the same turn
    with pytest.raises(asyncio.CancelledError):
        await second
    assert second.cancelled()
    assert reached == ["cancelled at the await"], "its cleanup ran, as for any cancelled task"
    assert not first.done()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_a_coroutine_may_refuse_a_cancellation_before_its_carrier_ran(runner: EagerRunner) -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return "finished anyway"
        return "never"

    runner.begin()
    try:
        runner.step_entered(after_a_turn(0))
        _, task = runner.step_entered(stubborn())
    finally:
        runner.end()
    assert task is not None
    task.cancel()
    assert await task == "finished anyway"


async def test_close_cancels_the_spare_carrier() -> None:
    runner = EagerRunner(asyncio.get_running_loop())
    runner.step(at_once(1))
    spare = runner._spare
    assert spare is not None
    runner.close()
    await asyncio.sleep(0)
    assert spare[0].cancelled()
