"""Asynchronous projector: follows the event topic and brings `cart_projections` up to date.

A message only says "cart X has reached version v". The projector reads the events after the
projection's version from the event store and applies them in order, in one transaction with
a version guard, so duplicates, reordering across relays and redelivery after a crash neither
lose nor double an event. Offsets are committed after the projections are written.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiokafka import AIOKafkaConsumer

from targets.cart.cache import CartCache
from targets.cart.db import Json, Pool
from targets.cart.domain import Cart, Event
from targets.cart.metrics import Metrics

log = logging.getLogger(__name__)

_TAIL = (
    "SELECT event_id, event_type, event_version, event_data FROM domain_events "
    "WHERE aggregate_id = $1 AND event_version > $2 ORDER BY event_version"
)
_UPSERT = """
INSERT INTO cart_projections (user_id, cart_data, version, last_event_id, updated_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (user_id) DO UPDATE SET cart_data = EXCLUDED.cart_data, version = EXCLUDED.version,
  last_event_id = EXCLUDED.last_event_id, updated_at = EXCLUDED.updated_at
WHERE cart_projections.version < EXCLUDED.version
"""


class Projector:
    def __init__(
        self,
        pool: Pool,
        cache: CartCache,
        consumer: AIOKafkaConsumer,
        metrics: Metrics,
        concurrency: int = 8,
    ) -> None:
        self.pool = pool
        self.cache = cache
        self.consumer = consumer
        self.metrics = metrics
        self._limit = asyncio.Semaphore(concurrency)

    async def catch_up(self, cart_id: str, seen: int) -> int:
        """Apply every stored event after the projection's version; return how many."""
        async with self._limit, self.pool.acquire() as conn:
            async with conn.transaction():
                row = await conn.fetchrow(
                    "SELECT cart_data FROM cart_projections WHERE user_id = $1 FOR UPDATE", cart_id
                )
                cart = Cart.from_view(row[0]) if row else Cart(cart_id)
                if cart.version >= seen:
                    return 0  # duplicate or already caught up by an earlier message
                tail = await conn.fetch(_TAIL, cart_id, cart.version)
                last_id = None
                for event_id, etype, version, data in tail:
                    if version != cart.version + 1:
                        raise RuntimeError(f"cart {cart_id}: gap in event store at version {version}")
                    cart.apply(Event(etype, data))
                    last_id = event_id
                if last_id is None:
                    return 0
                view = orjson.dumps(cart.view())
                await conn.execute(_UPSERT, cart_id, Json(view), cart.version, last_id)
        await self.cache.put(cart_id, cart.version, view, orjson.dumps(cart.summary()))
        self.metrics.projected.inc(len(tail))
        return len(tail)

    async def project_batch(self, messages: list[bytes]) -> int:
        latest: dict[str, int] = {}
        for value in messages:
            event = orjson.loads(value)
            cid = event["cartId"]
            if event["version"] > latest.get(cid, 0):
                latest[cid] = event["version"]
        applied = await asyncio.gather(*(self.catch_up(c, v) for c, v in latest.items()))
        return sum(applied)

    async def run(self) -> None:
        while True:
            try:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=1000)
                if not batches:
                    continue
                await self.project_batch([m.value for msgs in batches.values() for m in msgs])
                await self.consumer.commit()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep following; uncommitted messages come again
                log.warning("projector: %r; retrying", exc)
                await asyncio.sleep(0.5)
                await self._rewind()

    async def _rewind(self) -> None:
        """Go back to the committed offsets so the failed batch is read again."""
        for tp in self.consumer.assignment():
            committed = await self.consumer.committed(tp)
            if committed is not None:
                self.consumer.seek(tp, committed)
