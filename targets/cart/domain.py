"""The cart aggregate: state rebuilt by applying events in version order.

Prices are integer cents so totals are exact in every replay. One command yields exactly one
event, so an acknowledged write is exactly one event version.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ITEM_ADDED = "CartItemAdded"
ITEM_REMOVED = "CartItemRemoved"
QUANTITY_UPDATED = "CartItemQuantityUpdated"
CART_CLEARED = "CartCleared"
EVENT_TYPES = (ITEM_ADDED, ITEM_REMOVED, QUANTITY_UPDATED, CART_CLEARED)


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: dict[str, Any]


@dataclass(slots=True)
class Cart:
    cart_id: str
    version: int = 0
    # product id -> [quantity, unit price cents]; insertion order is the display order
    lines: dict[str, list[int]] = field(default_factory=dict)

    def apply(self, event: Event) -> None:
        """Apply one event and advance the version; unknown types are a bug, not data."""
        d = event.data
        if event.type == ITEM_ADDED:
            line = self.lines.get(d["productId"])
            if line is None:
                self.lines[d["productId"]] = [d["quantity"], d["unitPrice"]]
            else:
                line[0] += d["quantity"]
                line[1] = d["unitPrice"]
        elif event.type == ITEM_REMOVED:
            self.lines.pop(d["productId"], None)
        elif event.type == QUANTITY_UPDATED:
            self.lines[d["productId"]][0] = d["quantity"]
        elif event.type == CART_CLEARED:
            self.lines.clear()
        else:
            raise ValueError(f"unknown event type {event.type!r}")
        self.version += 1

    def copy(self) -> Cart:
        return Cart(self.cart_id, self.version, {k: list(v) for k, v in self.lines.items()})

    def state(self) -> dict[str, Any]:
        """What a snapshot stores."""
        return {"version": self.version, "lines": [[k, q, p] for k, (q, p) in self.lines.items()]}

    @classmethod
    def from_state(cls, cart_id: str, state: dict[str, Any]) -> Cart:
        return cls(cart_id, state["version"], {k: [q, p] for k, q, p in state["lines"]})

    @classmethod
    def from_view(cls, view: dict[str, Any]) -> Cart:
        """Rebuild state from a projection row (the asynchronous projector's starting point)."""
        lines = {i["productId"]: [i["quantity"], i["unitPrice"]] for i in view["items"]}
        return cls(view["cartId"], view["version"], lines)

    def view(self) -> dict[str, Any]:
        """The read model (projection and query answer)."""
        items = [
            {"productId": k, "quantity": q, "unitPrice": p, "lineTotal": q * p} for k, (q, p) in self.lines.items()
        ]
        return {
            "cartId": self.cart_id,
            "version": self.version,
            "items": items,
            "totalItems": sum(q for q, _ in self.lines.values()),
            "totalPrice": sum(q * p for q, p in self.lines.values()),
        }

    def summary(self) -> dict[str, Any]:
        """The summary query's answer (summary_of(view()) without building the items)."""
        return {
            "cartId": self.cart_id,
            "version": self.version,
            "lineCount": len(self.lines),
            "totalItems": sum(q for q, _ in self.lines.values()),
            "totalPrice": sum(q * p for q, p in self.lines.values()),
        }


def summary_of(view: dict[str, Any]) -> dict[str, Any]:
    return {
        "cartId": view["cartId"],
        "version": view["version"],
        "lineCount": len(view["items"]),
        "totalItems": view["totalItems"],
        "totalPrice": view["totalPrice"],
    }


def replay(cart_id: str, events: Iterable[Event], snapshot: dict[str, Any] | None = None) -> Cart:
    """Rebuild a cart from an optional snapshot state and the events after it."""
    cart = Cart.from_state(cart_id, snapshot) if snapshot else Cart(cart_id)
    for event in events:
        cart.apply(event)
    return cart
