"""The workload's own model of a cart, independent of the target's code.

Two reducers: one over acknowledged commands (in the version order the server gave them),
one over the stored events (with prices, to check totals). If the server lost, doubled or
reordered a write, one of them disagrees with the projection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Lines = dict[str, int]


@dataclass(slots=True)
class CartRecord:
    """What the workload knows about one cart."""

    cart_id: str
    issued_writes: int = 0
    failed_writes: int = 0
    conflicts: int = 0
    in_flight: int = 0
    acked: dict[int, tuple[str, str | None, int | None]] = field(default_factory=dict)  # version -> op
    max_acked: int = 0
    stale_reads: list[tuple[int, int]] = field(default_factory=list)  # (seen, required)

    def unaccounted(self) -> int:
        """Writes with no outcome (timed out or still in flight): each may or may not have landed."""
        return self.issued_writes - len(self.acked) - self.failed_writes


def apply_command(lines: Lines, kind: str, product: str | None, quantity: int | None) -> None:
    if kind == "add":
        assert product is not None and quantity is not None
        lines[product] = lines.get(product, 0) + quantity
    elif kind == "update":
        assert product is not None and quantity is not None
        lines[product] = quantity
    elif kind == "remove":
        lines.pop(product or "", None)
    elif kind == "clear":
        lines.clear()


def replay_commands(record: CartRecord) -> Lines:
    lines: Lines = {}
    for version in sorted(record.acked):
        kind, product, quantity = record.acked[version]
        apply_command(lines, kind, product, quantity)
    return lines


EVENT_OF = {
    "add": "CartItemAdded",
    "update": "CartItemQuantityUpdated",
    "remove": "CartItemRemoved",
    "clear": "CartCleared",
}


def replay_events(events: list[dict[str, Any]]) -> tuple[Lines, int, int]:
    """(lines, total items, total price in cents) from stored events."""
    lines: Lines = {}
    prices: dict[str, int] = {}
    for e in events:
        d = e["data"]
        t = e["type"]
        if t == "CartItemAdded":
            lines[d["productId"]] = lines.get(d["productId"], 0) + d["quantity"]
            prices[d["productId"]] = d["unitPrice"]
        elif t == "CartItemQuantityUpdated":
            lines[d["productId"]] = d["quantity"]
        elif t == "CartItemRemoved":
            lines.pop(d["productId"], None)
        elif t == "CartCleared":
            lines.clear()
    return lines, sum(lines.values()), sum(q * prices[p] for p, q in lines.items())


def check_cart(record: CartRecord, events: list[dict[str, Any]], projection: dict[str, Any] | None) -> list[str]:
    """Problems with one cart: events vs acknowledged writes vs projection."""
    cid = record.cart_id
    problems: list[str] = []
    versions = [e["version"] for e in events]
    if versions != list(range(1, len(events) + 1)):
        problems.append(f"cart {cid}: event versions {versions[:10]}... are not 1..{len(events)}")
    lost = sorted(v for v in record.acked if v > len(events))
    if lost:
        problems.append(f"cart {cid}: acknowledged versions {lost} have no stored event (lost writes)")
    for version, (kind, product, _) in record.acked.items():
        if version <= len(events):
            e = events[version - 1]
            if e["type"] != EVENT_OF[kind] or (product is not None and e["data"].get("productId") != product):
                problems.append(f"cart {cid}: version {version} acknowledged {kind} {product} but stored {e}")
    extra = len(events) - len(record.acked)
    if extra > max(0, record.unaccounted()):
        problems.append(
            f"cart {cid}: {len(events)} events for {len(record.acked)} acknowledged writes and "
            f"{record.unaccounted()} without outcome (doubled or phantom writes)"
        )
    lines, total_items, total_price = replay_events(events)
    if events:
        if projection is None:
            problems.append(f"cart {cid}: has {len(events)} events but no projection")
        else:
            shown = {i["productId"]: i["quantity"] for i in projection["items"]}
            if (shown, projection["totalItems"], projection["totalPrice"], projection["version"]) != (
                lines,
                total_items,
                total_price,
                len(events),
            ):
                problems.append(f"cart {cid}: projection {projection} != replay of its {len(events)} events")
    if record.unaccounted() == 0 and record.acked:
        expected = replay_commands(record)
        if expected != lines:
            problems.append(f"cart {cid}: shadow model {expected} != replay of events {lines}")
    for seen, required in record.stale_reads[:3]:
        problems.append(f"cart {cid}: a read returned version {seen} after version {required} was acknowledged")
    return problems
