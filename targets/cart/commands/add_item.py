"""AddItem: put a quantity of a product in the cart (merging with an existing line)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.cart.catalogue import Product
from targets.cart.commands import rules
from targets.cart.domain import ITEM_ADDED, Cart, Event
from targets.cart.result import Err, Ok, Problem, Result, invalid


@dataclass(frozen=True, slots=True)
class AddItem:
    cart_id: str
    product_id: str
    quantity: int
    expected_version: int | None = None


def validate(
    cart_id: str, body: Any, catalogue: dict[str, Product], expected: int | None = None
) -> Result[AddItem, Problem]:
    if not isinstance(body, dict):
        return invalid("body must be a JSON object with productId and quantity")
    cid = rules.cart_id(cart_id)
    if isinstance(cid, Err):
        return cid
    prod = rules.product(body.get("productId"), catalogue)
    if isinstance(prod, Err):
        return prod
    qty = rules.quantity(body)
    if isinstance(qty, Err):
        return qty
    return Ok(AddItem(cid.value, prod.value.product_id, qty.value, expected))


def decide(cart: Cart, cmd: AddItem, catalogue: dict[str, Product]) -> Result[Event, Problem]:
    line = cart.lines.get(cmd.product_id)
    if line is None and len(cart.lines) >= rules.MAX_LINES:
        return invalid(f"a cart holds at most {rules.MAX_LINES} products", "productId", "cart_full")
    total = cmd.quantity + (line[0] if line else 0)
    if total > rules.MAX_QUANTITY:
        return invalid(
            f"quantity of {cmd.product_id} would be {total}, above {rules.MAX_QUANTITY}",
            "quantity",
            "quantity_out_of_range",
        )
    price = catalogue[cmd.product_id].price_cents
    return Ok(Event(ITEM_ADDED, {"productId": cmd.product_id, "quantity": cmd.quantity, "unitPrice": price}))
