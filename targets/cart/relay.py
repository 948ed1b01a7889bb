"""Outbox relay: publishes rows of `event_outbox` to the event topic, then deletes them.

Rows are locked with SKIP LOCKED, so several relays (one per server worker) share the work;
a failed publish rolls back and the rows are sent again. Delivery is at least once and not
ordered across relays: the projector is built for both (it catches up from the event store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import orjson
from aiokafka import AIOKafkaProducer

from targets.cart.db import Pool
from targets.cart.metrics import Metrics
from targets.cart.store import OUTBOX_CHANNEL

log = logging.getLogger(__name__)

_TAKE = "SELECT id, aggregate_id, payload FROM event_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"


class OutboxRelay:
    def __init__(
        self,
        pool: Pool,
        producer: AIOKafkaProducer,
        topic: str,
        metrics: Metrics,
        batch: int = 500,
        idle_s: float = 0.5,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.topic = topic
        self.metrics = metrics
        self.batch = batch
        self.idle_s = idle_s  # safety net: look anyway this often without a notification
        self._wake = asyncio.Event()

    async def relay_once(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_TAKE, self.batch)
            if not rows:
                return 0
            sends = [
                await self.producer.send(self.topic, value=orjson.dumps(r[2]), key=str(r[1]).encode()) for r in rows
            ]
            await asyncio.gather(*sends)
            await conn.execute("DELETE FROM event_outbox WHERE id = ANY($1::bigint[])", [r[0] for r in rows])
        self.metrics.relayed.inc(len(rows))
        return len(rows)

    async def run(self) -> None:
        """Relay on every commit notification (and every `idle_s` regardless)."""
        listener = await self.pool.acquire()

        def wake(*_: object) -> None:
            self._wake.set()

        await listener.add_listener(OUTBOX_CHANNEL, wake)
        try:
            await self._loop()
        finally:
            await listener.remove_listener(OUTBOX_CHANNEL, wake)
            await self.pool.release(listener)

    async def _loop(self) -> None:
        while True:
            try:
                sent = await self.relay_once()
            except Exception as exc:  # a broker error type; keep relaying rather than die silently
                log.warning("outbox relay: %r; retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if sent < self.batch:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)
                self._wake.clear()
