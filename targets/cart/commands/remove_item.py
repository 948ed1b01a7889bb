"""RemoveItem: take a product's line out of the cart."""

from __future__ import annotations

from dataclasses import dataclass

from targets.cart.catalogue import Product
from targets.cart.commands import rules
from targets.cart.domain import ITEM_REMOVED, Cart, Event
from targets.cart.result import Err, Ok, Problem, Result, not_found


@dataclass(frozen=True, slots=True)
class RemoveItem:
    cart_id: str
    product_id: str
    expected_version: int | None = None


def validate(
    cart_id: str, product_id: str, catalogue: dict[str, Product], expected: int | None = None
) -> Result[RemoveItem, Problem]:
    cid = rules.cart_id(cart_id)
    if isinstance(cid, Err):
        return cid
    prod = rules.product(product_id, catalogue)
    if isinstance(prod, Err):
        return prod
    return Ok(RemoveItem(cid.value, product_id, expected))


def decide(cart: Cart, cmd: RemoveItem, catalogue: dict[str, Product]) -> Result[Event, Problem]:
    if cart.version == 0:
        return not_found(f"cart {cmd.cart_id} does not exist", "cart_not_found")
    if cmd.product_id not in cart.lines:
        return not_found(f"product {cmd.product_id} is not in the cart", "item_not_in_cart")
    return Ok(Event(ITEM_REMOVED, {"productId": cmd.product_id}))
