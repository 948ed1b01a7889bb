"""A single coroutine that feeds an aiokafka producer, for drivers that produce one record per op.

Awaiting `producer.send()` from every op's own task makes a thundering herd when a partition's
batch fills: every waiting task sleeps on the drain and wakes together. One sender fed by a queue
keeps aiokafka's batching and removes the herd (measured: about 3x the send rate, about half the
CPU per record, see docs/benchmarks.md). `submit` is synchronous, so a driver exposing it as
`send_nowait` also spares the harness a Task per op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

OnError = Callable[[str, BaseException], None]


class ProducerPump:
    def __init__(self, producer: Any, on_error: OnError) -> None:
        self._producer = producer
        self._on_error = on_error
        self._queue: deque[tuple[str, str, bytes, bytes | None, int | None, list[Any] | None]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kafka-pump")

    def submit(self, op_id: str, topic: str, value: bytes, key: bytes | None = None,
               partition: int | None = None, headers: list[Any] | None = None) -> None:
        self._queue.append((op_id, topic, value, key, partition, headers))
        if not self._wake.is_set():
            self._wake.set()

    def __len__(self) -> int:
        return len(self._queue)

    async def _run(self) -> None:
        queue, send = self._queue, self._producer.send
        while True:
            if not queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            op_id, topic, value, key, part, headers = queue.popleft()
            try:
                fut = await send(topic, value, key=key, partition=part, headers=headers)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an op that could not be handed to the producer
                self._on_error(op_id, exc)
                continue
            fut.add_done_callback(partial(self._delivered, op_id))

    def _delivered(self, op_id: str, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            self._on_error(op_id, asyncio.CancelledError())
        elif (exc := fut.exception()) is not None:
            self._on_error(op_id, exc)

    async def stop(self) -> None:
        """Stop sending; ops still queued are dropped (the harness has already booked them)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._queue.clear()
