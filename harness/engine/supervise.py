"""Background tasks the harness watches: none may die or stall silently.

A driver's outcome reader, a lag probe, the harness's own ticker: if one raises, its traceback
goes to the log, its name and error go to the run's problems, and `on_failure` is told (the
generator stops the schedule). A task that ends without error when it was meant to run for the
whole run is a failure too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


class Supervisor:
    def __init__(self, on_failure: Callable[[str], None] | None = None) -> None:
        self.on_failure = on_failure
        self.failures: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    def spawn(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        task = asyncio.get_running_loop().create_task(self._guard(factory, name), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("background task %r failed", name, exc_info=exc)
            self._fail(f"background task {name!r} failed: {type(exc).__name__}: {exc}")
            return
        if not self._closing:
            self._fail(f"background task {name!r} ended before the run did")

    def _fail(self, reason: str) -> None:
        self.failures.append(reason)
        if self.on_failure is not None:
            self.on_failure(reason)

    async def stop(self) -> None:
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
