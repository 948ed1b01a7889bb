"""The WebSocket hub: who is subscribed to what, and one bounded send queue per client.

The seed's Go hub (register / unregister / broadcast channels, a read pump and a write pump per
client) becomes, on one asyncio loop, plain method calls: the event loop already serialises
them, so no lock and no hub task are needed. A message is encoded once (`event_message`) and the
same text is queued for every subscriber of its topic; each client's writer task drains its own
queue to its socket.

Slow clients: a client whose queue is full (it reads slower than events arrive, so its socket
and then its queue back up) is dropped at once, with a reason, instead of stalling the hub or
growing memory: it is unsubscribed from everything, its queue is discarded (counted as
undelivered), and its connection is closed with code 1008 and a reason text. Every message the
hub queued ends as delivered (written to the socket) or undelivered (with a reason): nothing is
dropped silently.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

#: close code for a client dropped by policy (it did not keep up with its topics)
CLOSE_SLOW = 1008
#: close code for a gateway going away (what uvicorn also sends on shutdown)
CLOSE_GOING_AWAY = 1001


def _default(obj: Any) -> Any:
    """Money (Avro decimal) as a string: exact, and what the bank REST API returns too."""
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def iso_ms(epoch_ms: int) -> str:
    """RFC 3339 UTC with milliseconds, what the seed's `time.Time` marshals to."""
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_message(topic: str, payload: dict[str, Any], timestamp_ms: int, op_id: str | None = None,
                  origin: str | None = None) -> str:
    """`{"type": "event", "topic", "payload", "timestamp"[, "op_id", "origin"]}` as JSON text.

    `op_id` and `origin` are the harness's correlation headers (`edabench-op-id`,
    `edabench-origin`) when the record carried them: a subscriber matches a delivery to the op
    that produced it without parsing the payload.
    """
    msg: dict[str, Any] = {"type": "event", "topic": topic, "payload": payload, "timestamp": iso_ms(timestamp_ms)}
    if op_id is not None:
        msg["op_id"] = op_id
    if origin is not None:
        msg["origin"] = origin
    return orjson.dumps(msg, default=_default).decode()


def control_message(kind: str, **fields: Any) -> str:
    """A "status" or "error" message (the seed's other two message types)."""
    return orjson.dumps({"type": kind, **fields, "timestamp": iso_ms(_now_ms())}).decode()


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


class UnknownTopics(ValueError):
    def __init__(self, unknown: list[str], known: Iterable[str]) -> None:
        super().__init__(f"unknown topic(s) {unknown}; known: {sorted(known)}")
        self.unknown = unknown


class HubStats:
    """Running totals (read by /metrics and /api/v1/health; plain ints on the hot path)."""

    __slots__ = ("client_errors", "connections", "delivered", "dropped", "queued", "records", "undecodable",
                 "undelivered")

    def __init__(self) -> None:
        self.connections = 0
        self.queued = 0
        self.delivered = 0
        self.client_errors = 0
        self.dropped: dict[str, int] = {}
        self.undelivered: dict[str, int] = {}
        self.records: dict[str, int] = {}
        self.undecodable: dict[str, int] = {}

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class Client:
    """One connection's subscriptions and send queue. `limit` bounds the queue (messages)."""

    __slots__ = ("close_code", "close_reason", "delivered", "id", "in_hand", "limit", "on_close", "peer", "queue",
                 "topics", "wake")

    def __init__(self, client_id: int, limit: int, peer: str = "") -> None:
        self.id = client_id
        self.peer = peer
        self.limit = limit
        self.topics: set[str] = set()
        self.queue: deque[str] = deque()
        self.wake = asyncio.Event()
        self.delivered = 0
        #: a message taken off the queue whose write has not returned yet
        self.in_hand = 0
        self.close_code: int | None = None
        self.close_reason = ""
        #: set by the connection: stops its writer when the hub drops the client
        self.on_close: Callable[[], None] | None = None

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    def control(self, text: str) -> None:
        """Queue a status or error reply: always accepted (one per client request, not per event)."""
        self.queue.append(text)
        self.wake.set()

    def __repr__(self) -> str:
        return f"Client({self.id}, {self.peer}, topics={sorted(self.topics)}, queued={len(self.queue)})"


class Hub:
    """Clients, their topics, and fan-out. `topics` are the names clients may subscribe to."""

    def __init__(self, topics: Iterable[str], queue_limit: int = 1000) -> None:
        self.known: frozenset[str] = frozenset(topics)
        self.queue_limit = queue_limit
        self.clients: dict[int, Client] = {}
        self.subscribers: dict[str, dict[int, Client]] = {t: {} for t in self.known}
        self.stats = HubStats()
        self._ids = itertools.count(1)

    # ---- membership (the seed's register / unregister) -----------------------------------------
    def new_client(self, peer: str = "", limit: int | None = None) -> Client:
        return Client(next(self._ids), limit or self.queue_limit, peer)

    def register(self, client: Client) -> None:
        self.clients[client.id] = client
        self.stats.connections += 1

    def unregister(self, client: Client, reason: str = "disconnected") -> None:
        """Forget a client; what it still had queued is counted undelivered under `reason`."""
        if self.clients.pop(client.id, None) is None:
            return
        for topic in client.topics:
            self.subscribers[topic].pop(client.id, None)
        client.topics.clear()
        left = len(client.queue) + client.in_hand
        client.queue.clear()
        if left:
            self.stats.undelivered[reason] = self.stats.undelivered.get(reason, 0) + left

    # ---- subscriptions ---------------------------------------------------------------------------
    def resolve(self, topics: Iterable[str]) -> list[str]:
        """The topics asked for, as known names; "*" means all. Raises UnknownTopics (none applied)."""
        wanted = list(dict.fromkeys(topics))
        if "*" in wanted:
            return sorted(self.known)
        unknown = [t for t in wanted if t not in self.known]
        if unknown:
            raise UnknownTopics(unknown, self.known)
        return wanted

    def subscribe(self, client: Client, topics: Iterable[str]) -> list[str]:
        names = self.resolve(topics)
        if client.id in self.clients:
            for t in names:
                self.subscribers[t][client.id] = client
                client.topics.add(t)
        return sorted(client.topics)

    def unsubscribe(self, client: Client, topics: Iterable[str]) -> list[str]:
        for t in self.resolve(topics):
            self.subscribers[t].pop(client.id, None)
            client.topics.discard(t)
        return sorted(client.topics)

    # ---- fan-out ---------------------------------------------------------------------------------
    def broadcast(self, text: str) -> int:
        """To every client, subscribed or not (status notices); returns how many got it queued."""
        return self._offer(self.clients.values(), text)

    def broadcast_to_topic(self, topic: str, text: str) -> int:
        """To the subscribers of `topic`; returns how many got it queued."""
        subs = self.subscribers.get(topic)
        if not subs:
            return 0
        return self._offer(subs.values(), text)

    def _offer(self, clients: Iterable[Client], text: str) -> int:
        """Queue `text` for each client; the full ones are dropped after the loop (the loop may be
        over the very dict a drop changes)."""
        n = 0
        limit_drops: list[Client] | None = None
        for c in clients:
            q = c.queue
            if len(q) >= c.limit:
                if limit_drops is None:
                    limit_drops = []
                limit_drops.append(c)
                continue
            q.append(text)
            if not c.wake.is_set():
                c.wake.set()
            n += 1
        self.stats.queued += n
        if limit_drops:
            for c in limit_drops:
                self.drop(c, "slow_consumer", f"slow consumer: {len(c.queue)} messages queued, limit {c.limit}",
                          missed=1)
        return n

    def drop(self, client: Client, reason: str, text: str, code: int = CLOSE_SLOW, missed: int = 0) -> None:
        """Close a client by policy: unsubscribed now, queue discarded (counted), its writer told.
        `missed` counts a message that was meant for it and never queued."""
        if client.closing:
            return
        client.close_code = code
        client.close_reason = text[:120]  # a close frame's reason is at most 123 bytes
        self.stats.dropped[reason] = self.stats.dropped.get(reason, 0) + 1
        if missed:
            self.stats.undelivered[reason] = self.stats.undelivered.get(reason, 0) + missed
        self.unregister(client, reason)
        client.wake.set()
        if client.on_close is not None:
            client.on_close()

    def delivered(self, client: Client, n: int) -> None:
        client.delivered += n
        self.stats.delivered += n

    def snapshot(self) -> dict[str, Any]:
        """For /api/v1/health: clients, subscriptions per topic, totals."""
        return {
            "clients": len(self.clients),
            "subscribers": {t: len(s) for t, s in sorted(self.subscribers.items())},
            **self.stats.as_dict(),
        }
