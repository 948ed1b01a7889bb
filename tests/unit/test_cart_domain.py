"""The cart aggregate: applying events, replay, snapshots."""

from __future__ import annotations

import random

import pytest

from targets.cart.domain import (
    CART_CLEARED,
    ITEM_ADDED,
    ITEM_REMOVED,
    QUANTITY_UPDATED,
    Cart,
    Event,
    replay,
    summary_of,
)

CID = "00000000-0000-0000-0000-000000000001"


def added(pid: str, qty: int, price: int = 100) -> Event:
    return Event(ITEM_ADDED, {"productId": pid, "quantity": qty, "unitPrice": price})


def test_adding_a_product_twice_merges_the_line() -> None:
    cart = replay(CID, [added("p-0001", 2), added("p-0001", 3)])
    assert cart.lines == {"p-0001": [5, 100]}
    assert cart.version == 2


def test_every_event_type_moves_the_version_by_one() -> None:
    events = [
        added("p-0001", 1),
        Event(QUANTITY_UPDATED, {"productId": "p-0001", "quantity": 4}),
        Event(ITEM_REMOVED, {"productId": "p-0001"}),
        Event(CART_CLEARED, {}),
    ]
    cart = Cart(CID)
    for n, event in enumerate(events, start=1):
        cart.apply(event)
        assert cart.version == n


def test_view_totals_are_exact_cents() -> None:
    view = replay(CID, [added("p-0001", 3, 199), added("p-0002", 2, 1050)]).view()
    assert view["totalItems"] == 5
    assert view["totalPrice"] == 3 * 199 + 2 * 1050
    assert [i["productId"] for i in view["items"]] == ["p-0001", "p-0002"]
    assert summary_of(view) == {"cartId": CID, "version": 2, "lineCount": 2, "totalItems": 5, "totalPrice": 2697}


def test_clear_empties_the_cart_but_keeps_its_version() -> None:
    cart = replay(CID, [added("p-0001", 1), Event(CART_CLEARED, {})])
    assert cart.lines == {}
    assert cart.version == 2


def test_unknown_event_type_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown event type"):
        Cart(CID).apply(Event("CartExploded", {}))


def _random_events(rng: random.Random, n: int) -> list[Event]:
    cart = Cart(CID)
    out = []
    for _ in range(n):
        choice = rng.random()
        if not cart.lines or choice < 0.5:
            e = added(f"p-{rng.randint(1, 8):04d}", rng.randint(1, 3), rng.randint(100, 999))
        elif choice < 0.75:
            e = Event(QUANTITY_UPDATED, {"productId": rng.choice(list(cart.lines)), "quantity": rng.randint(1, 9)})
        elif choice < 0.95:
            e = Event(ITEM_REMOVED, {"productId": rng.choice(list(cart.lines))})
        else:
            e = Event(CART_CLEARED, {})
        cart.apply(e)
        out.append(e)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_snapshot_plus_tail_equals_full_replay(seed: int) -> None:
    rng = random.Random(seed)
    events = _random_events(rng, 60)
    full = replay(CID, events)
    for cut in (0, 1, 17, 50, 60):
        snapshot = replay(CID, events[:cut]).state()
        assert replay(CID, events[cut:], snapshot) == full


def test_view_round_trips_to_state() -> None:
    cart = replay(CID, [added("p-0003", 2, 300), added("p-0001", 1, 100)])
    assert Cart.from_view(cart.view()) == cart
    assert Cart.from_state(CID, cart.state()) == cart


def test_copy_is_independent() -> None:
    cart = replay(CID, [added("p-0001", 1)])
    clone = cart.copy()
    clone.apply(added("p-0001", 1))
    assert cart.lines["p-0001"][0] == 1
    assert cart.version == 1
