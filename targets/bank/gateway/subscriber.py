"""A WebSocket subscriber of the gateway, for drivers and tests: connect, subscribe, call back per event.

    sub = Subscriber("ws://127.0.0.1:8080/ws", ["bancaire.compte.ouvert"], on_event)
    await sub.connect()      # returns once the gateway confirmed the subscription
    task = asyncio.create_task(sub.run())   # calls on_event(topic, op_id, origin, payload) per event
    ...
    await sub.close()

Why confirm before returning: a driver that starts sending as soon as `connect` returns must not
count as missing the events the gateway could not have routed to it yet. `op_id` is the
`edabench-op-id` header of the event's record (an int, as the harness numbers ops), `origin` its
`edabench-origin` (which generator process sent it): with them a driver matches a delivery to
its op without reading the payload. The callback runs on the reader's loop: keep it short.

Every way a subscription ends is recorded (`closed_by`, `close_code`, `close_reason`,
`disconnects`), so a subscriber the gateway dropped as too slow is reported, never silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import orjson

log = logging.getLogger(__name__)

OnEvent = Callable[[str, int | None, str | None, dict[str, Any]], None]


class SubscribeError(RuntimeError):
    """The gateway refused the subscription (unknown topic, bad request) or never confirmed it."""


class Subscriber:
    def __init__(self, url: str, topics: Sequence[str], on_event: OnEvent, *, name: str = "",
                 session: aiohttp.ClientSession | None = None, connect_timeout_s: float = 10.0,
                 on_message: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.url = url
        self.topics = list(topics)
        self.on_event = on_event
        self.on_message = on_message  # status and error messages after the subscription
        self.name = name or url
        self.connect_timeout_s = connect_timeout_s
        self._session = session
        self._own_session = session is None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self.subscribed: list[str] = []
        self.received = 0
        self.by_topic: dict[str, int] = {}
        self.errors: list[str] = []
        self.disconnects = 0
        self.close_code: int | None = None
        self.close_reason = ""
        #: "client" (close() called), "server" (a close frame: see close_code / close_reason), "error"
        self.closed_by: str | None = None

    @property
    def dropped(self) -> bool:
        """The gateway closed the connection by policy (1008: too slow) or overload (1013)."""
        return self.closed_by == "server" and self.close_code in (1008, 1013)

    async def connect(self) -> list[str]:
        """Open the socket and subscribe; returns the topics the gateway confirmed."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            self._ws = await self._session.ws_connect(self.url, autoping=True, compress=0, max_msg_size=16 << 20)
            await self._ws.send_str(orjson.dumps({"action": "subscribe", "topics": self.topics}).decode())
            async with asyncio.timeout(self.connect_timeout_s):
                while True:
                    msg = await self._ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise SubscribeError(f"{self.name}: connection ended before the subscription was confirmed "
                                             f"({msg.type.name} {msg.data!r} {msg.extra!r})")
                    body = orjson.loads(msg.data)
                    if body.get("type") == "status" and body.get("action") == "subscribe":
                        self.subscribed = list(body.get("topics") or [])
                        return self.subscribed
                    if body.get("type") == "error":
                        raise SubscribeError(f"{self.name}: {body.get('error')}: {body.get('detail')}")
        except BaseException:
            await self.close()
            raise

    async def run(self) -> None:
        """Read until the connection ends; never raises for a closed connection (it is recorded)."""
        ws = self._ws
        if ws is None:
            raise RuntimeError("connect() first")
        on_event = self.on_event
        loads = orjson.loads
        by_topic = self.by_topic
        text = aiohttp.WSMsgType.TEXT
        while True:
            msg = await ws.receive()
            if msg.type is not text:
                self._ended(msg)
                return
            body = loads(msg.data)
            if body.get("type") != "event":
                self._other(body)
                continue
            topic = body["topic"]
            op = body.get("op_id")
            self.received += 1
            by_topic[topic] = by_topic.get(topic, 0) + 1
            on_event(topic, int(op) if op is not None and op.isdigit() else None, body.get("origin"), body["payload"])

    def _other(self, body: dict[str, Any]) -> None:
        if body.get("type") == "error":
            self.errors.append(f"{body.get('error')}: {body.get('detail')}")
        if self.on_message is not None:
            self.on_message(body)

    def _ended(self, msg: aiohttp.WSMessage) -> None:
        self.disconnects += 1
        ws = self._ws
        if msg.type == aiohttp.WSMsgType.ERROR:
            self.closed_by = "error"
            self.close_reason = repr(msg.data)
        elif self.closed_by is None:
            self.closed_by = "server"
            self.close_code = ws.close_code if ws is not None else msg.data
            self.close_reason = str(msg.extra or "")
        if self.closed_by == "server":
            log.warning("%s: closed by the gateway: %s %s", self.name, self.close_code, self.close_reason)

    async def send(self, message: dict[str, Any]) -> None:
        """A raw control message (subscribe / unsubscribe more topics); the answer comes to on_message."""
        if self._ws is None:
            raise RuntimeError("connect() first")
        await self._ws.send_str(orjson.dumps(message).decode())

    async def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None and not ws.closed:
            if self.closed_by is None:
                self.closed_by = "client"
            with contextlib.suppress(Exception):
                await ws.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def snapshot(self) -> dict[str, Any]:
        return {"name": self.name, "topics": self.subscribed, "received": self.received,
                "by_topic": dict(self.by_topic), "errors": list(self.errors), "disconnects": self.disconnects,
                "closed_by": self.closed_by,
                "close_code": self.close_code, "close_reason": self.close_reason, "dropped": self.dropped}

    async def __aenter__(self) -> Subscriber:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
