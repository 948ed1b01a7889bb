"""The WebSocket hub (the seed's hub_test.go, as behaviours): membership, subscriptions, fan-out,
and the bounded queue that drops a slow client with a reason instead of stalling everyone."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from targets.bank.gateway.hub import CLOSE_SLOW, Client, Hub, UnknownTopics, event_message

A, B, C = "bancaire.compte.ouvert", "bancaire.depot.effectue", "bancaire.retrait.effectue"


def hub(limit: int = 10) -> Hub:
    return Hub([A, B, C], queue_limit=limit)


def joined(h: Hub, *topics: str) -> Client:
    c = h.new_client("test")
    h.register(c)
    if topics:
        h.subscribe(c, topics)
    return c


def test_a_registered_client_is_counted() -> None:
    h = hub()
    c = joined(h)
    assert h.clients == {c.id: c} and h.stats.connections == 1


def test_an_unregistered_client_leaves_every_topic() -> None:
    h = hub()
    c = joined(h, A, B)
    h.unregister(c)
    assert h.clients == {} and h.broadcast_to_topic(A, "x") == 0 and h.broadcast_to_topic(B, "x") == 0


def test_broadcast_reaches_every_client_whatever_it_subscribed_to() -> None:
    h = hub()
    clients = [joined(h, A), joined(h, B), joined(h)]
    assert h.broadcast("notice") == 3
    assert [list(c.queue) for c in clients] == [["notice"]] * 3


def test_broadcast_to_topic_reaches_only_its_subscribers() -> None:
    h = hub()
    a, b, ab = joined(h, A), joined(h, B), joined(h, A, B)
    assert h.broadcast_to_topic(A, "ev") == 2
    assert (list(a.queue), list(b.queue), list(ab.queue)) == (["ev"], [], ["ev"])


def test_subscribe_adds_to_what_the_client_already_has() -> None:
    h = hub()
    c = joined(h, A)
    assert h.subscribe(c, [B]) == sorted([A, B])


def test_subscribe_to_star_is_every_topic() -> None:
    h = hub()
    c = joined(h)
    assert h.subscribe(c, ["*"]) == sorted([A, B, C])


def test_unsubscribe_stops_the_deliveries_of_that_topic_only() -> None:
    h = hub()
    c = joined(h, A, B)
    assert h.unsubscribe(c, [A]) == [B]
    h.broadcast_to_topic(A, "a")
    h.broadcast_to_topic(B, "b")
    assert list(c.queue) == ["b"]


def test_an_unknown_topic_is_refused_and_nothing_of_the_request_applies() -> None:
    h = hub()
    c = joined(h)
    with pytest.raises(UnknownTopics) as err:
        h.subscribe(c, [A, "bancaire.nope"])
    assert err.value.unknown == ["bancaire.nope"] and c.topics == set()


def test_a_client_whose_queue_is_full_is_dropped_with_a_reason_and_the_others_still_receive() -> None:
    h = hub(limit=2)
    slow, fast = joined(h, A), joined(h, A)
    for i in range(2):
        h.broadcast_to_topic(A, f"m{i}")
    fast.queue.clear()  # the fast client's writer drained its queue; the slow one's did not
    closed: list[int] = []
    slow.on_close = lambda: closed.append(slow.id)
    assert h.broadcast_to_topic(A, "m2") == 1
    assert slow.close_code == CLOSE_SLOW and "slow consumer" in slow.close_reason and closed == [slow.id]
    assert list(fast.queue) == ["m2"] and slow.id not in h.clients
    assert h.broadcast_to_topic(A, "m3") == 1 and list(fast.queue) == ["m2", "m3"]


def test_a_dropped_clients_messages_are_counted_undelivered_never_lost_silently() -> None:
    h = hub(limit=2)
    slow = joined(h, A)
    for i in range(3):
        h.broadcast_to_topic(A, f"m{i}")
    assert h.stats.dropped == {"slow_consumer": 1}
    assert h.stats.undelivered == {"slow_consumer": 3}  # two queued and discarded, one never queued
    assert h.stats.queued == 2 and not slow.queue


def test_a_client_that_leaves_with_messages_queued_has_them_counted_undelivered() -> None:
    h = hub()
    c = joined(h, A)
    h.broadcast_to_topic(A, "m0")
    h.broadcast_to_topic(A, "m1")
    h.unregister(c, "disconnected")
    assert h.stats.undelivered == {"disconnected": 2}


def test_a_reply_to_the_client_is_queued_even_when_its_queue_is_full() -> None:
    h = hub(limit=1)
    c = joined(h, A)
    h.broadcast_to_topic(A, "m0")
    c.control("status")
    assert list(c.queue) == ["m0", "status"] and not c.closing


def test_an_event_message_carries_topic_payload_timestamp_and_the_correlation_headers() -> None:
    text = event_message(A, {"compte_id": "C1", "solde_initial": Decimal("12.50")}, 1_767_225_600_123, "42", "run/0")
    assert orjson.loads(text) == {"type": "event", "topic": A, "payload": {"compte_id": "C1", "solde_initial": "12.50"},
                                  "timestamp": "2026-01-01T00:00:00.123Z", "op_id": "42", "origin": "run/0"}


def test_an_event_without_correlation_headers_has_no_such_fields() -> None:
    assert set(orjson.loads(event_message(A, {}, 0))) == {"type", "topic", "payload", "timestamp"}
