"""ClearCart: empty the cart (the cart and its history remain)."""

from __future__ import annotations

from dataclasses import dataclass

from targets.cart.catalogue import Product
from targets.cart.commands import rules
from targets.cart.domain import CART_CLEARED, Cart, Event
from targets.cart.result import Err, Ok, Problem, Result, not_found


@dataclass(frozen=True, slots=True)
class ClearCart:
    cart_id: str
    expected_version: int | None = None


def validate(cart_id: str, expected: int | None = None) -> Result[ClearCart, Problem]:
    cid = rules.cart_id(cart_id)
    if isinstance(cid, Err):
        return cid
    return Ok(ClearCart(cid.value, expected))


def decide(cart: Cart, cmd: ClearCart, catalogue: dict[str, Product]) -> Result[Event, Problem]:
    if cart.version == 0:
        return not_found(f"cart {cmd.cart_id} does not exist", "cart_not_found")
    return Ok(Event(CART_CLEARED, {}))
