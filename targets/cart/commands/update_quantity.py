"""UpdateQuantity: set the quantity of a line already in the cart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.cart.catalogue import Product
from targets.cart.commands import rules
from targets.cart.domain import QUANTITY_UPDATED, Cart, Event
from targets.cart.result import Err, Ok, Problem, Result, invalid, not_found


@dataclass(frozen=True, slots=True)
class UpdateQuantity:
    cart_id: str
    product_id: str
    quantity: int
    expected_version: int | None = None


def validate(
    cart_id: str, product_id: str, body: Any, catalogue: dict[str, Product], expected: int | None = None
) -> Result[UpdateQuantity, Problem]:
    if not isinstance(body, dict):
        return invalid("body must be a JSON object with quantity")
    cid = rules.cart_id(cart_id)
    if isinstance(cid, Err):
        return cid
    prod = rules.product(product_id, catalogue)
    if isinstance(prod, Err):
        return prod
    qty = rules.quantity(body)
    if isinstance(qty, Err):
        return qty
    return Ok(UpdateQuantity(cid.value, product_id, qty.value, expected))


def decide(cart: Cart, cmd: UpdateQuantity, catalogue: dict[str, Product]) -> Result[Event, Problem]:
    if cart.version == 0:
        return not_found(f"cart {cmd.cart_id} does not exist", "cart_not_found")
    if cmd.product_id not in cart.lines:
        return not_found(f"product {cmd.product_id} is not in the cart", "item_not_in_cart")
    return Ok(Event(QUANTITY_UPDATED, {"productId": cmd.product_id, "quantity": cmd.quantity}))
