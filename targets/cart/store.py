"""The event store: load an aggregate and append one event, each in one round trip.

An append is a single SQL statement (data-modifying CTEs): the event, and in the same
transaction the projection (sync mode) or an outbox row (async mode), plus a snapshot every
N versions. The unique (aggregate_id, event_version) index turns a concurrent append into a
conflict instead of a lost update.

Sync mode: the projection row is the cart's state at its version (written in the event's
transaction), so loading is one primary-key read of it, and the append carries its own check:
it inserts only if the projection is at version n - 1, and otherwise answers the stored state
in the same round trip. A process can therefore keep the carts it wrote and decide on them
without reading first; when another process wrote in between, the append says so and hands
over the fresh state, one round trip instead of a failed insert plus a reload.
Async mode: the projection lags, so a load reads the latest snapshot and the events after it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from targets.cart.db import Json, Pool
from targets.cart.domain import Cart, Event, replay

_LOAD = """
SELECT 0, version, aggregate_data, NULL::text FROM cart_snapshots WHERE aggregate_id = $1
UNION ALL
SELECT 1, event_version, event_data, event_type FROM domain_events
 WHERE aggregate_id = $1
   AND event_version > COALESCE((SELECT version FROM cart_snapshots WHERE aggregate_id = $1), 0)
ORDER BY 1, 2
"""

_LOAD_PROJECTION = "SELECT cart_data FROM cart_projections WHERE user_id = $1"

_EVENT = """
WITH ev AS (
  INSERT INTO domain_events (aggregate_id, aggregate_type, event_type, event_version, event_data, metadata)
  VALUES ($1, 'Cart', $2, $3, $4, $5)
  RETURNING event_id, aggregate_id, event_type, event_version, event_data
)"""

# sync mode: append only on top of version n - 1 of the projection; otherwise return it
_EVENT_CHECKED = """
WITH cur AS (
  SELECT version, cart_data FROM cart_projections WHERE user_id = $1
), ev AS (
  INSERT INTO domain_events (aggregate_id, aggregate_type, event_type, event_version, event_data, metadata)
  SELECT $1, 'Cart', $2, $3, $4, $5 WHERE COALESCE((SELECT version FROM cur), 0) = $3 - 1
  RETURNING event_id, aggregate_id, event_type, event_version, event_data
)"""

_PROJECT = """, proj AS (
  INSERT INTO cart_projections (user_id, cart_data, version, last_event_id, updated_at)
  SELECT $1, $6, $3, event_id, now() FROM ev
  ON CONFLICT (user_id) DO UPDATE SET cart_data = EXCLUDED.cart_data, version = EXCLUDED.version,
    last_event_id = EXCLUDED.last_event_id, updated_at = EXCLUDED.updated_at
  WHERE cart_projections.version < EXCLUDED.version
  RETURNING 1
)"""

_OUTBOX = """, outbox AS (
  INSERT INTO event_outbox (aggregate_id, event_version, payload)
  SELECT aggregate_id, event_version, jsonb_build_object('cartId', aggregate_id::text,
    'version', event_version, 'type', event_type, 'data', event_data, 'eventId', event_id::text) FROM ev
  RETURNING 1
)"""

_SNAPSHOT = """, snap AS (
  INSERT INTO cart_snapshots (aggregate_id, aggregate_data, version)
  SELECT $1, ${n}, $3 FROM ev
  ON CONFLICT (aggregate_id) DO UPDATE SET aggregate_data = EXCLUDED.aggregate_data,
    version = EXCLUDED.version, created_at = now()
  WHERE cart_snapshots.version < EXCLUDED.version
  RETURNING 1
)"""

_TAIL_CHECKED = "\nSELECT (SELECT event_id FROM ev), (SELECT cart_data FROM cur WHERE NOT EXISTS (SELECT FROM ev))"
# async mode: wake the relay at commit instead of having it poll (notifications are sent on commit)
_TAIL_NOTIFY = "\nSELECT event_id FROM ev, (SELECT pg_notify('cart_outbox', '')) AS wake"
OUTBOX_CHANNEL = "cart_outbox"


@dataclass(frozen=True, slots=True)
class Appended:
    event_id: str
    version: int
    view: bytes  # the cart's read model after the event, JSON as stored and served


def _statement(project: bool, snapshot: bool) -> str:
    sql = (_EVENT_CHECKED + _PROJECT) if project else (_EVENT + _OUTBOX)
    if snapshot:
        sql += _SNAPSHOT.replace("{n}", "7" if project else "6")
    return sql + (_TAIL_CHECKED if project else _TAIL_NOTIFY)


class EventStore:
    """Appends and loads cart events. `project=True` is sync mode (projection in the same
    transaction); otherwise the event goes to the outbox for the asynchronous projector."""

    def __init__(self, pool: Pool, project: bool = True, snapshot_every: int = 50, cache_aggregates: int = 0) -> None:
        self.pool = pool
        self.project = project
        self.snapshot_every = snapshot_every
        self._sql = {s: _statement(project, s) for s in (False, True)}
        # Carts this process appended last, so the next command on them skips the load query.
        # Always safe: a stale entry appends a version that exists, the unique index refuses it,
        # and the handler reloads from the store. Worth it when one process owns most writes.
        # OrderedDict: evicting the oldest is O(1); a dict's `next(iter(d))` rescans deleted slots
        self._aggregates: OrderedDict[str, Cart] | None = OrderedDict() if cache_aggregates > 0 else None
        self._aggregates_max = cache_aggregates
        self.aggregate_hits = 0

    async def load(self, cart_id: str, expected: int | None = None) -> tuple[Cart, bool]:
        """(cart, True) as stored, or (cart, False): this process's last appended state, which
        another process may have moved on from (the append finds out; so must a refusal). The
        store decides when the caller expects a version other than the cached one."""
        if self._aggregates is not None:
            cached = self._aggregates.get(cart_id)
            if cached is not None and (expected is None or expected == cached.version):
                self.aggregate_hits += 1
                return cached, False
        return await self.load_stored(cart_id), True

    def forget(self, cart_id: str) -> None:
        if self._aggregates is not None:
            self._aggregates.pop(cart_id, None)

    def _remember(self, cart: Cart) -> None:
        agg = self._aggregates
        if agg is None:
            return
        agg[cart.cart_id] = cart
        agg.move_to_end(cart.cart_id)
        if len(agg) > self._aggregates_max:
            agg.popitem(last=False)  # oldest written first out

    async def load_stored(self, cart_id: str) -> Cart:
        if self.project:
            view = await self.pool.fetchval(_LOAD_PROJECTION, cart_id)
            return Cart.from_view(view) if view is not None else Cart(cart_id)
        rows = await self.pool.fetch(_LOAD, cart_id)
        snapshot: dict[str, Any] | None = None
        events: list[Event] = []
        for kind, _version, data, etype in rows:
            if kind == 0:
                snapshot = data
            else:
                events.append(Event(etype, data))
        return replay(cart_id, events, snapshot)

    async def append(self, cart: Cart, event: Event, metadata: dict[str, Any] | None = None) -> Appended | Cart | None:
        """Append `event` as version cart.version (cart already has it applied).

        Returns the stored cart when it was not at the version before (sync mode: decide again
        on it), None when a concurrent writer took that version first (then load_stored).
        """
        version = cart.version
        snap = self.snapshot_every > 0 and version % self.snapshot_every == 0
        view = orjson.dumps(cart.view())
        args: list[Any] = [cart.cart_id, event.type, version, event.data, metadata]
        if self.project:
            args.append(Json(view))
        if snap:
            args.append(cart.state())
        try:
            if self.project:
                event_id, current = await self.pool.fetchrow(self._sql[snap], *args)
            else:
                event_id, current = await self.pool.fetchval(self._sql[snap], *args), None
        except asyncpg.UniqueViolationError:
            self.forget(cart.cart_id)
            return None
        if event_id is None:
            stored = Cart.from_view(current) if current is not None else Cart(cart.cart_id)
            self._remember(stored)
            return stored
        self._remember(cart)
        return Appended(str(event_id), version, view)

    async def version(self, cart_id: str) -> int:
        v = await self.pool.fetchval("SELECT max(event_version) FROM domain_events WHERE aggregate_id = $1", cart_id)
        return v or 0

    async def projection(self, cart_id: str) -> tuple[dict[str, Any], int] | None:
        row = await self.pool.fetchrow("SELECT cart_data, version FROM cart_projections WHERE user_id = $1", cart_id)
        return (row[0], row[1]) if row else None

    async def history(self, cart_id: str, limit: int = 500) -> list[dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT event_id, event_type, event_version, event_data, occurred_at FROM domain_events "
            "WHERE aggregate_id = $1 ORDER BY event_version LIMIT $2",
            cart_id,
            limit,
        )
        return [
            {
                "eventId": str(r[0]),
                "type": r[1],
                "version": r[2],
                "data": r[3],
                "occurredAt": r[4].isoformat(),
            }
            for r in rows
        ]
