"""Produce-only drivers (harness/protocol.py): one op = one 200-byte record, done when the broker acks it.

They isolate the generator's send path from any echo round trip, so its rate compares directly with
a bare producer. Loaded by the harness by dotted path (``TARGET``, ``NULL_TARGET``).

``ProduceDriver`` options: ``topic`` (default "bench.produce"), ``record_bytes`` (200), ``acks`` (1),
``linger_ms`` (0), ``max_batch_size`` (aiokafka's default, 16384) and ``mode``:

* ``"record"`` (default): ``AIOKafkaProducer.send`` per op, as the echo driver does. Every op's task
  competes for the partition's one open batch: once a batch is full, all waiting tasks wake on its
  drain and all but one batch's worth wait again;
* ``"pump"``: ops are queued and one task sends them in turn (``await send`` per record), the
  pattern a bare aiokafka producer loop uses, so no two ops ever wait on the same batch.

``NullDriver`` does no I/O: every op succeeds at once. Its max rate is the harness's own ceiling.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from functools import partial
from typing import Any, ClassVar

from harness.protocol import OK, Completions, DriverContext, Op, Result

TOPIC = "bench.produce"
TARGET = "benchmarks.produce_driver:ProduceDriver"
NULL_TARGET = "benchmarks.produce_driver:NullDriver"


async def create_topic(bootstrap: str, topic: str = TOPIC, partitions: int = 2) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


class ProduceDriver:
    name: ClassVar[str] = "produce"
    needs: ClassVar[tuple[str, ...]] = ("kafka",)

    def __init__(self) -> None:
        self._producer: Any = None
        self._complete: Completions | None = None
        self._topic = TOPIC
        self._value = b""
        self._mode = "record"
        self._pending: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._pump_task: asyncio.Task[None] | None = None

    async def start(self, ctx: DriverContext) -> None:
        from aiokafka import AIOKafkaProducer

        opts = ctx.options
        self._topic = str(opts.get("topic", TOPIC))
        self._value = b"x" * int(opts.get("record_bytes", 200))
        self._mode = str(opts.get("mode", "record"))
        if self._mode not in ("record", "pump"):
            raise ValueError(f"mode must be record or pump, not {self._mode!r}")
        self._complete = ctx.completions
        extra = {"max_batch_size": int(opts["max_batch_size"])} if "max_batch_size" in opts else {}
        self._producer = AIOKafkaProducer(
            bootstrap_servers=ctx.services["kafka"], enable_idempotence=False,
            linger_ms=int(opts.get("linger_ms", 0)), acks=int(opts.get("acks", 1)), **extra,
        )
        await self._producer.start()
        # one acknowledged record first, so metadata and connections are ready before the schedule starts
        await (await self._producer.send(self._topic, self._value))
        if self._mode == "pump":
            self._pump_task = asyncio.create_task(self._pump())

    # -- one send per record -----------------------------------------------------------------
    def _acked(self, op_id: str, fut: asyncio.Future[Any]) -> None:
        assert self._complete is not None
        if fut.cancelled():
            self._complete.complete(op_id, "cancelled")
            return
        exc = fut.exception()
        self._complete.complete(op_id, None if exc is None else type(exc).__name__)

    async def send(self, op: Op) -> Result | None:
        if self._mode == "pump":
            self._pending.append(op.id)
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return None
        fut = await self._producer.send(self._topic, self._value)
        fut.add_done_callback(partial(self._acked, op.id))
        return None

    # -- one sender task ----------------------------------------------------------------------------
    async def _pump(self) -> None:
        pending, send, topic, value = self._pending, self._producer.send, self._topic, self._value
        loop = asyncio.get_running_loop()
        while True:
            if not pending:
                self._waiter = loop.create_future()
                await self._waiter
                self._waiter = None
                continue
            op_id = pending.popleft()
            try:
                fut = await send(topic, value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                assert self._complete is not None
                self._complete.complete(op_id, type(exc).__name__)
                continue
            fut.add_done_callback(partial(self._acked, op_id))

    async def stop(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


class NullDriver:
    """No I/O: the ceiling of the harness itself (scheduler, task per op, books, histograms)."""

    name: ClassVar[str] = "null"
    needs: ClassVar[tuple[str, ...]] = ()

    async def start(self, ctx: DriverContext) -> None:
        return None

    async def send(self, op: Op) -> Result | None:
        return OK

    async def stop(self) -> None:
        return None
