"""Queries (get cart, summary, history): the Redis cache first, the projection on a miss,
the event store for history.

Answers are the JSON bytes to serve, so a cache hit costs no decoding or encoding and no
PostgreSQL query (writers keep the cache filled: see cache.py).
"""

from __future__ import annotations

import orjson

from targets.cart.cache import CartCache
from targets.cart.domain import summary_of
from targets.cart.metrics import Metrics
from targets.cart.result import Ok, Problem, Result, not_found
from targets.cart.store import EventStore


class CartQueries:
    def __init__(self, store: EventStore, cache: CartCache, metrics: Metrics) -> None:
        self.store = store
        self.cache = cache
        self.metrics = metrics

    async def cart(self, cart_id: str, summary: bool = False) -> Result[bytes, Problem]:
        cached = await self.cache.get(cart_id, summary)
        if cached is not None:
            self.metrics.cache_hits.inc()
            return Ok(cached)
        self.metrics.cache_misses.inc()
        found = await self.store.projection(cart_id)
        if found is None:
            return not_found(f"cart {cart_id} does not exist", "cart_not_found")
        view, version = found
        view_bytes = orjson.dumps(view)
        summary_bytes = orjson.dumps(summary_of(view))
        await self.cache.put(cart_id, version, view_bytes, summary_bytes)
        return Ok(summary_bytes if summary else view_bytes)

    async def history(self, cart_id: str, limit: int = 500) -> Result[bytes, Problem]:
        """Read from the event store itself: it is the audit trail, so never cached."""
        events = await self.store.history(cart_id, limit)
        if not events:
            return not_found(f"cart {cart_id} does not exist", "cart_not_found")
        return Ok(orjson.dumps({"cartId": cart_id, "events": events}))
