"""The gateway's WebSocket endpoint and the subscriber client (the seed's client.go read and write
pumps, as behaviours), served by uvicorn in this process with a hub the test feeds directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from targets.bank.gateway.app import Gateway
from targets.bank.gateway.hub import Hub, event_message
from targets.bank.gateway.subscriber import SubscribeError, Subscriber
from targets.bank.gateway.web import Cors
from targets.bank.topics import EVENT_TOPICS
from tests.unit.test_bank_gateway_proxy import gateway

A, B = "bancaire.compte.ouvert", "bancaire.depot.effectue"
UI = "http://localhost:5173"


@dataclass
class Served:
    hub: Hub
    ws: str
    http: aiohttp.ClientSession

    async def raw(self, **kw: Any) -> aiohttp.ClientWebSocketResponse:
        return await self.http.ws_connect(self.ws, **kw)


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    hub = Hub(EVENT_TOPICS.values(), queue_limit=100)
    async with gateway(Gateway(hub, None, None, Cors([UI]), access_log=False, close_wait_s=30)) as url, \
            aiohttp.ClientSession() as http:
        yield Served(hub, url.replace("http://", "ws://") + "/ws", http)


async def until(check: Callable[[], Any], within_s: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + within_s
    while not (got := check()):
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.01)
    return got


async def next_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await asyncio.wait_for(ws.receive(), 10)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return orjson.loads(msg.data)


def event(topic: str, n: int, pad: int = 0) -> str:
    return event_message(topic, {"n": n, "pad": "x" * pad}, 0, str(n), "test/0")


async def test_a_subscription_is_confirmed_with_the_topics_now_subscribed(served: Served) -> None:
    ws = await served.raw()
    await ws.send_str(orjson.dumps({"action": "subscribe", "topics": [A, B]}).decode())
    reply = await next_json(ws)
    assert reply["type"] == "status" and reply["action"] == "subscribe" and reply["topics"] == sorted([A, B])
    await ws.close()


async def test_after_unsubscribe_the_topics_events_stop(served: Served) -> None:
    ws = await served.raw()
    await ws.send_str(orjson.dumps({"action": "subscribe", "topics": [A, B]}).decode())
    await next_json(ws)
    await ws.send_str(orjson.dumps({"action": "unsubscribe", "topics": [A]}).decode())
    assert (await next_json(ws))["topics"] == [B]
    served.hub.broadcast_to_topic(A, event(A, 1))
    served.hub.broadcast_to_topic(B, event(B, 2))
    got = await next_json(ws)  # one queue per client: had the first been queued, it would come first
    assert (got["topic"], got["payload"]["n"]) == (B, 2)
    await ws.close()


async def test_an_unknown_topic_is_an_error_listing_the_known_ones(served: Served) -> None:
    ws = await served.raw()
    await ws.send_str(orjson.dumps({"action": "subscribe", "topics": ["bancaire.nope"]}).decode())
    reply = await next_json(ws)
    assert reply["type"] == "error" and reply["error"] == "unknown_topic" and A in reply["known"]
    await ws.close()


@pytest.mark.parametrize(("message", "error"), [
    ("{not json", "invalid_json"), ("[1, 2]", "invalid_message"), ('{"action": "publish", "topics": []}',
                                                                     "unknown_action"),
    ('{"action": "subscribe", "topics": "bancaire.compte.ouvert"}', "invalid_topics"),
])  # fmt: skip
async def test_a_bad_client_message_is_answered_with_an_error_and_the_connection_stays(
        served: Served, message: str, error: str) -> None:
    ws = await served.raw()
    await ws.send_str(message)
    assert (await next_json(ws))["error"] == error
    await ws.send_str(orjson.dumps({"action": "subscribe", "topics": [A]}).decode())
    assert (await next_json(ws))["type"] == "status"
    await ws.close()


async def test_a_websocket_from_a_foreign_origin_is_refused(served: Served) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as err:
        await served.raw(origin="http://evil.example")
    assert err.value.status == 403


async def test_a_websocket_from_an_allowed_origin_is_accepted(served: Served) -> None:
    ws = await served.raw(origin=UI)
    assert not ws.closed
    await ws.close()


async def test_the_subscriber_calls_back_with_topic_op_id_origin_and_payload(served: Served) -> None:
    got: list[tuple[Any, ...]] = []
    async with Subscriber(served.ws, [A], lambda *e: got.append(e)) as sub:
        task = asyncio.create_task(sub.run())
        served.hub.broadcast_to_topic(A, event(A, 7))
        await until(lambda: got, what="the event")
        task.cancel()
    assert got == [(A, 7, "test/0", {"n": 7, "pad": ""})]


async def test_the_subscriber_refuses_an_unknown_topic(served: Served) -> None:
    with pytest.raises(SubscribeError, match="unknown_topic"):
        await Subscriber(served.ws, ["bancaire.nope"], lambda *e: None).connect()


async def test_a_subscriber_the_gateway_drops_records_the_code_and_reason(served: Served) -> None:
    sub = Subscriber(served.ws, [A], lambda *e: None)
    await sub.connect()
    task = asyncio.create_task(sub.run())
    client = next(iter(served.hub.clients.values()))
    served.hub.drop(client, "test", "slow consumer: test")
    await asyncio.wait_for(task, 10)
    assert sub.dropped and (sub.close_code, sub.close_reason) == (1008, "slow consumer: test")
    await sub.close()


async def test_a_client_that_stops_reading_is_dropped_and_the_others_keep_receiving(served: Served) -> None:
    fast_got: list[int] = []
    fast = Subscriber(served.ws, [A], lambda t, op, o, p: fast_got.append(op))
    slow = Subscriber(served.ws, [A], lambda *e: None)
    await fast.connect()
    await slow.connect()  # subscribed, never read: its socket fills, then its queue
    fast_task = asyncio.create_task(fast.run())
    n = 0
    try:
        while not served.hub.stats.dropped and n < 100_000:
            for _ in range(50):  # half the queue limit, then the fast client catches up
                n += 1
                served.hub.broadcast_to_topic(A, event(A, n, pad=1000))
                if served.hub.stats.dropped:
                    break  # event n was the one the slow client had no room for
            await until(lambda n=n: len(fast_got) >= n, what="the fast client caught up")
        assert served.hub.stats.dropped == {"slow_consumer": 1}
        await asyncio.wait_for(slow.run(), 30)  # what its socket held, then the close frame
        assert slow.dropped and slow.close_code == 1008 and "slow consumer" in slow.close_reason
        served.hub.broadcast_to_topic(A, event(A, n + 1))
        await until(lambda: fast_got[-1:] == [n + 1], what="the fast client got the event after the drop")
        assert fast_got == list(range(1, n + 2)) and fast.closed_by is None
        # every event meant for the slow client was delivered to it or counted undelivered
        assert served.hub.stats.undelivered["slow_consumer"] == n - slow.received
    finally:
        fast_task.cancel()
        await fast.close()
        await slow.close()
