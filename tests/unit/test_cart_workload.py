"""The cart workload: deterministic sessions, op choice, and what its verification catches."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from harness.protocol import Op
from workloads.cart.sessions import CartWorkload
from workloads.cart.shadow import EVENT_OF

KINDS = ["browse", "view", "summary", "history", "add", "update", "remove", "clear"]
PRICE = 100


def kinds(n: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(KINDS) for _ in range(n)]


class FakeCartServer:
    """An in-memory stand-in for the driver: applies each op as the service would."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.stale_by = 0  # reads answer this many versions behind

    def send(self, kind: str, p: dict[str, Any]) -> str | None:
        if kind == "browse":
            return None
        events = self.events.setdefault(p["cart"], [])
        if kind in EVENT_OF:
            if p.get("if_match") is not None and p["if_match"] != len(events):
                return "http_409"
            data = {"productId": p.get("product"), "quantity": p.get("quantity"), "unitPrice": PRICE}
            events.append({"type": EVENT_OF[kind], "version": len(events) + 1, "data": data})
            p["version"] = len(events)
        elif kind in ("view", "summary"):
            p["version"] = max(0, len(events) - self.stale_by)
        return None

    def view(self, cart: str) -> dict[str, Any]:
        lines: dict[str, int] = {}
        for e in self.events[cart]:
            d = e["data"]
            if e["type"] == "CartItemAdded":
                lines[d["productId"]] = lines.get(d["productId"], 0) + d["quantity"]
            elif e["type"] == "CartItemQuantityUpdated":
                lines[d["productId"]] = d["quantity"]
            elif e["type"] == "CartItemRemoved":
                lines.pop(d["productId"])
            else:
                lines.clear()
        items = [{"productId": k, "quantity": q, "unitPrice": PRICE} for k, q in lines.items()]
        total = sum(lines.values())
        return {"items": items, "totalItems": total, "totalPrice": total * PRICE, "version": len(self.events[cart])}

    # the driver's verification API
    async def verify(self, cart_ids: list[str]) -> list[str]:
        return []

    async def fetch_state(self, cart_ids: list[str]) -> dict[str, Any]:
        return {c: (self.events.get(c, []), self.view(c) if self.events.get(c) else None, None) for c in cart_ids}

    async def get(self, path: str) -> tuple[int, Any]:
        return 200, self.view(path.rsplit("/", 1)[-1])


def drive(workload: CartWorkload, server: FakeCartServer, n: int) -> None:
    for i, kind in enumerate(kinds(n)):
        kind, payload = workload.next_op(kind)
        error = server.send(kind, payload)
        workload.on_result(Op(str(i), kind, payload), error)


def test_same_seed_same_ops() -> None:
    a = CartWorkload({"namespace": 1}, seed=3, process_index=0)
    b = CartWorkload({"namespace": 1}, seed=3, process_index=0)
    seq = kinds(500)
    assert [a.next_op(k) for k in seq] == [b.next_op(k) for k in seq]


def test_cart_ids_differ_between_processes() -> None:
    a = CartWorkload({"namespace": 1}, seed=3, process_index=0)
    b = CartWorkload({"namespace": 1}, seed=3, process_index=1)
    assert not set(a.carts) & set(b.carts)


def test_ops_on_an_empty_cart_become_adds() -> None:
    w = CartWorkload({"sessions": 1, "session_ops": 1000, "namespace": 1}, seed=1, process_index=0)
    assert w.next_op("remove")[0] == "add"
    w2 = CartWorkload({"sessions": 1, "session_ops": 1000, "namespace": 1}, seed=1, process_index=0)
    assert w2.next_op("view")[0] == "add"


def test_payloads_are_valid_for_their_kind() -> None:
    w = CartWorkload({"catalogue_size": 50, "namespace": 1}, seed=2, process_index=0)
    for kind in kinds(2000):
        got, p = w.next_op(kind)
        if got in ("add", "update"):
            assert 1 <= p["quantity"] <= 99 and 1 <= int(p["product"][2:]) <= 50
        if got != "browse":
            assert p["cart"] in w.carts


def test_tabs_send_consecutive_ops_to_one_cart() -> None:
    w = CartWorkload({"tabs": 3, "namespace": 1}, seed=1, process_index=0)
    carts = [w.next_op("add")[1]["cart"] for _ in range(9)]
    assert [len(set(g)) for g in (carts[0:3], carts[3:6], carts[6:9])] == [1, 1, 1]


def test_if_match_uses_the_last_acknowledged_version() -> None:
    w = CartWorkload({"sessions": 1, "session_ops": 1000, "if_match_rate": 1.0, "namespace": 1}, 1, 0)
    server = FakeCartServer()
    _, first = w.next_op("add")
    assert "if_match" not in first
    server.send("add", first)
    w.on_result(Op("1", "add", first), None)
    _, second = w.next_op("add")
    assert second["if_match"] == 1


def test_consistent_run_verifies_clean() -> None:
    w = CartWorkload({"sessions": 20, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    drive(w, server, 3000)
    assert asyncio.run(w.verify(server)) == []
    assert w.stats()["acked"] == w.stats()["writes"] > 0


def test_verify_catches_a_lost_event() -> None:
    w = CartWorkload({"sessions": 5, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    drive(w, server, 300)
    cart = next(c for c, e in server.events.items() if len(e) > 2)
    server.events[cart].pop()
    problems = asyncio.run(w.verify(server))
    assert any(cart in p and "lost" in p for p in problems)


def test_verify_catches_a_doubled_event() -> None:
    w = CartWorkload({"sessions": 5, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    drive(w, server, 300)
    cart = next(c for c, e in server.events.items() if len(e) > 2)
    events = server.events[cart]
    events.append({**events[-1], "version": len(events) + 1})
    problems = asyncio.run(w.verify(server))
    assert any(cart in p and "doubled" in p for p in problems)


def test_verify_catches_a_stale_read() -> None:
    w = CartWorkload({"sessions": 5, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    server.stale_by = 1
    drive(w, server, 300)
    assert any("after version" in p for p in asyncio.run(w.verify(server)))


def test_eventual_consistency_does_not_flag_lagging_reads() -> None:
    w = CartWorkload({"sessions": 5, "consistency": "eventual", "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    server.stale_by = 1
    drive(w, server, 300)
    assert asyncio.run(w.verify(server)) == []


def test_failed_write_resyncs_the_session_from_acknowledged_state() -> None:
    w = CartWorkload({"sessions": 1, "session_ops": 1000, "namespace": 1}, seed=1, process_index=0)
    _, p = w.next_op("add")
    w.on_result(Op("1", "add", p), "http_503")  # the add did not happen
    assert w.next_op("remove")[0] == "add"  # nothing acknowledged: nothing to remove


def test_keep_carts_bounds_the_records_kept_whatever_the_run_length() -> None:
    w = CartWorkload({"sessions": 20, "session_ops": 5, "keep_carts": 50, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    drive(w, server, 5000)
    assert len(w.carts) <= 50 + 20  # the last 50 finished carts and the active sessions
    assert w.dropped["carts"] > 100


def test_keep_carts_still_counts_every_write_and_verifies_the_kept_ones() -> None:
    w = CartWorkload({"sessions": 20, "session_ops": 5, "keep_carts": 50, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    drive(w, server, 5000)
    stats = w.stats()
    assert stats["acked"] == stats["writes"] == sum(len(e) for e in server.events.values())
    assert stats["verified_carts"] < stats["carts"]
    assert asyncio.run(w.verify(server)) == []


def test_a_stale_read_in_a_dropped_cart_is_still_a_problem() -> None:
    w = CartWorkload({"sessions": 5, "session_ops": 5, "keep_carts": 5, "namespace": 1}, seed=5, process_index=0)
    server = FakeCartServer()
    server.stale_by = 1
    drive(w, server, 2000)
    problems = asyncio.run(w.verify(server))
    assert w.dropped["stale_reads"] > 0
    assert any("finished carts dropped by keep_carts" in p for p in problems)
