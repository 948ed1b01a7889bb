"""Drivers that isolate the generator's own cost (harness/protocol.py), loaded by dotted path.

``NullDriver`` is README's example shape with no I/O (`async def send(self, op): return OK`): its
max rate is the harness's own ceiling. ``ProduceDriver`` produces one record per op with the
librdkafka transport and completes the op on the broker's acknowledgement: produce latency, with
nothing between the generator and the broker, so its rate compares directly with a bare
librdkafka loop. Options: ``topic`` ("bench.produce"), ``record_bytes`` (200), ``acks`` (1),
``linger_ms`` (5).
"""

from __future__ import annotations

import contextlib
from typing import Any, ClassVar

from harness.protocol import OK, DriverContext, Op, Result
from harness.transports.kafka import KafkaProducer

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
        self._producer: KafkaProducer | None = None
        self._topic = TOPIC
        self._value = b""
        self._ctx: DriverContext | None = None

    async def start(self, ctx: DriverContext) -> None:
        opts = ctx.options
        self._ctx = ctx
        self._topic = str(opts.get("topic", TOPIC))
        self._value = b"x" * int(opts.get("record_bytes", 200))
        self._producer = KafkaProducer(ctx.services["kafka"], ctx.completions.complete,
                                       on_acked=ctx.completions.complete_many,
                                       acks=opts.get("acks", 1), linger_ms=float(opts.get("linger_ms", 5)))
        await self._producer.prepare([self._topic])
        # one acknowledged record first, so metadata and connections are ready before the schedule starts
        self._producer.produce(self._topic, self._value)
        await self._producer.flush()
        ctx.background(self._producer.run, "produce-deliveries")

    async def send(self, op: Op) -> Result | None:
        self.send_batch([op])
        return None

    def send_batch(self, ops: list[Op]) -> None:
        assert self._producer is not None and self._ctx is not None
        ids = [op.id for op in ops]
        queued = self._producer.produce_batch(self._topic, [self._value] * len(ids), ids)
        for op_id in ids[queued:]:
            self._ctx.completions.complete(op_id, "produce_queue_full")

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.close()
            self._producer = None


class NullDriver:
    """No I/O, written as README's example driver: the ceiling of the harness itself."""

    name: ClassVar[str] = "null"
    needs: ClassVar[tuple[str, ...]] = ()

    async def start(self, ctx: Any) -> None:
        return None

    async def send(self, op: Op) -> Result | None:
        return OK

    async def stop(self) -> None:
        return None
