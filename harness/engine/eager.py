"""Run a driver's `send` coroutine synchronously until it first suspends; a Task only if it does.

A `Task` per op costs a few microseconds, the largest part of the harness's own cost per op, and
most drivers' `send` either finishes without waiting (an enqueue, a cached answer) or waits on
I/O. Python 3.12's eager tasks solve this; on 3.11 it is done by hand: the coroutine is stepped
in place while a spare carrier `Task` stands as the current task, so whatever the coroutine asks
of `asyncio.current_task()` before suspending (aiohttp's and `asyncio.timeout`'s timers) is the
Task that will carry it on. If it finishes, the carrier stays spare for the next op; if it
suspends, the carrier takes the coroutine over and a new spare is made.
"""

from __future__ import annotations

import asyncio
from asyncio import tasks as _tasks
from collections.abc import Coroutine
from typing import Any

_enter = getattr(_tasks, "_enter_task", None)
_leave = getattr(_tasks, "_leave_task", None)
AVAILABLE = _enter is not None and _leave is not None

_PENDING = object()


async def _continue(coro: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Go on driving `coro` from where the eager step left it (it yielded `yielded`)."""
    while True:
        if yielded is None:  # a bare yield (asyncio.sleep(0)): one loop turn
            await asyncio.sleep(0)
            step_exc: BaseException | None = None
        else:
            step_exc = None
            # the coroutine's own await marked the future as blocking; a Task clears the mark when it
            # takes the future over, and so must we before awaiting it again
            yielded._asyncio_future_blocking = False
            try:
                await yielded  # the coroutine reads the future's outcome itself when resumed
            except BaseException as exc:
                if not yielded.done():  # aimed at us (our Task was cancelled), not the future's: pass it in
                    step_exc = exc
        try:
            yielded = coro.throw(step_exc) if step_exc is not None else coro.send(None)
        except StopIteration as stop:
            return stop.value


class _Carrier(asyncio.Task):  # type: ignore[type-arg]
    """A carrier Task. A cancel that comes after the hand-off but before the carrier has run goes to
    the coroutine at its await, as a plain Task's would: thrown into `_carry` before its first line,
    it would drop the coroutine (already past its synchronous part) without its cleanup."""

    handoff: asyncio.Future[Any] | None = None
    taken = False  # the carrier has the coroutine in hand
    pending_cancel: tuple[Any, ...] | None = None  # (msg,) of a cancel waiting for that

    def cancel(self, msg: Any = None) -> bool:
        if self.taken or self.done() or self.handoff is None or not self.handoff.done():
            return super().cancel(msg)
        self.pending_cancel = (msg,)
        return True


class EagerRunner:
    """Steps coroutines in the caller's loop turn, handing suspended ones to carrier Tasks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._spare: tuple[asyncio.Task[Any], asyncio.Future[Any]] | None = None
        self._outer: asyncio.Task[Any] | None = None
        self.carried = 0  # coroutines that suspended and went on in a Task

    def _new_spare(self) -> tuple[asyncio.Task[Any], asyncio.Future[Any]]:
        handoff: asyncio.Future[Any] = self.loop.create_future()
        task = _Carrier(self._carry(handoff), loop=self.loop)
        task.handoff = handoff
        return task, handoff

    @staticmethod
    async def _carry(handoff: asyncio.Future[Any]) -> Any:
        coro, yielded = await handoff
        carrier = asyncio.current_task()
        if isinstance(carrier, _Carrier):
            carrier.taken = True
            if carrier.pending_cancel is not None:  # cancelled before it ran: at the coroutine's await
                if yielded is None:
                    try:
                        yielded = coro.throw(asyncio.CancelledError(*carrier.pending_cancel))
                    except StopIteration as stop:
                        return stop.value
                else:
                    yielded.cancel(*carrier.pending_cancel)
        return await _continue(coro, yielded)

    def step(self, coro: Coroutine[Any, Any, Any]) -> tuple[Any, asyncio.Task[Any] | None]:
        """(result, None) if `coro` finished at once; (None, task) if it suspended.

        Exceptions from the coroutine's synchronous part propagate to the caller."""
        self.begin()
        try:
            return self.step_entered(coro)
        finally:
            self.end()

    def begin(self) -> None:
        """Stand the spare carrier in as the current task, for a batch of `step_entered` calls."""
        if not AVAILABLE:
            return
        if self._spare is None:
            self._spare = self._new_spare()
        self._outer = asyncio.current_task(self.loop)
        if self._outer is not None:
            _leave(self.loop, self._outer)  # type: ignore[misc]
        _enter(self.loop, self._spare[0])  # type: ignore[misc]

    def end(self) -> None:
        """Give the caller's task back its place."""
        if not AVAILABLE:
            return
        assert self._spare is not None
        _leave(self.loop, self._spare[0])  # type: ignore[misc]
        if self._outer is not None:
            _enter(self.loop, self._outer)  # type: ignore[misc]
        self._outer = None

    def step_entered(self, coro: Coroutine[Any, Any, Any]) -> tuple[Any, asyncio.Task[Any] | None]:
        """`step` between `begin` and `end`: no task switching unless the coroutine suspends."""
        if not AVAILABLE:
            return None, self.loop.create_task(coro)
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value, None
        carrier, handoff = self._spare  # type: ignore[misc]
        self.carried += 1
        handoff.set_result((coro, yielded))
        self._spare = spare = self._new_spare()
        _leave(self.loop, carrier)  # type: ignore[misc]
        _enter(self.loop, spare[0])  # type: ignore[misc]
        return None, carrier

    def close(self) -> None:
        """Cancel the spare carrier (it never got work)."""
        if self._spare is not None:
            self._spare[0].cancel()
            self._spare = None
