"""Command validators (input -> command or a readable 422) and decisions (state -> event)."""

from __future__ import annotations

import pytest

from targets.cart import catalogue
from targets.cart.commands import add_item, clear_cart, remove_item, rules, update_quantity
from targets.cart.domain import ITEM_ADDED, ITEM_REMOVED, QUANTITY_UPDATED, Cart, Event
from targets.cart.result import Err, Ok

CAT = catalogue.build(20)
CID = "00000000-0000-0000-0000-000000000002"


def problem(result: object) -> tuple[int, str, str | None]:
    assert isinstance(result, Err), result
    details = result.error.details
    return result.error.status, result.error.code, details[0]["field"] if details else None


def test_valid_add_becomes_a_command() -> None:
    result = add_item.validate(CID.upper(), {"productId": "p-0003", "quantity": 2}, CAT, 4)
    assert result == Ok(add_item.AddItem(CID, "p-0003", 2, 4))


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"productId": "p-9999", "quantity": 1}, "unknown_product", "productId"),
        ({"productId": "", "quantity": 1}, "validation_failed", "productId"),
        ({"quantity": 1}, "validation_failed", "productId"),
        ({"productId": "p-0001", "quantity": 0}, "quantity_out_of_range", "quantity"),
        ({"productId": "p-0001", "quantity": 100}, "quantity_out_of_range", "quantity"),
        ({"productId": "p-0001", "quantity": "2"}, "validation_failed", "quantity"),
        ({"productId": "p-0001", "quantity": True}, "validation_failed", "quantity"),
        ({"productId": "p-0001"}, "validation_failed", "quantity"),
    ],
)
def test_invalid_add_is_a_422_naming_the_field(body: dict, code: str, field: str) -> None:
    assert problem(add_item.validate(CID, body, CAT)) == (422, code, field)


def test_add_body_must_be_an_object() -> None:
    assert problem(add_item.validate(CID, [1, 2], CAT))[:2] == (422, "validation_failed")


def test_cart_id_must_be_a_uuid() -> None:
    assert problem(clear_cart.validate("not-a-uuid")) == (422, "validation_failed", "cartId")


def test_update_quantity_checks_range() -> None:
    assert problem(update_quantity.validate(CID, "p-0001", {"quantity": -1}, CAT))[1] == "quantity_out_of_range"


def test_remove_checks_product() -> None:
    assert problem(remove_item.validate(CID, "nope", CAT))[1] == "unknown_product"


@pytest.mark.parametrize(("header", "expected"), [(None, None), ('"3"', 3), ('W/"7"', 7), ("12", 12), ("*", None)])
def test_if_match_parses_versions(header: str | None, expected: int | None) -> None:
    assert rules.expected_version(header) == Ok(expected)


def test_if_match_garbage_is_a_422() -> None:
    assert problem(rules.expected_version('"abc"')) == (422, "validation_failed", "If-Match")


def _cart_with(*lines: tuple[str, int]) -> Cart:
    cart = Cart(CID)
    for pid, qty in lines:
        cart.apply(Event(ITEM_ADDED, {"productId": pid, "quantity": qty, "unitPrice": CAT[pid].price_cents}))
    return cart


def test_add_decides_an_event_with_the_catalogue_price() -> None:
    event = add_item.decide(Cart(CID), add_item.AddItem(CID, "p-0005", 2), CAT)
    assert event == Ok(
        Event(ITEM_ADDED, {"productId": "p-0005", "quantity": 2, "unitPrice": CAT["p-0005"].price_cents})
    )


def test_add_beyond_the_line_maximum_is_refused() -> None:
    cart = _cart_with(("p-0001", 98))
    assert problem(add_item.decide(cart, add_item.AddItem(CID, "p-0001", 2), CAT))[1] == "quantity_out_of_range"


def test_add_beyond_the_line_count_is_refused() -> None:
    big = catalogue.build(60)
    cart = Cart(CID)
    for n in range(1, rules.MAX_LINES + 1):
        pid = catalogue.product_id(n)
        cart.apply(Event(ITEM_ADDED, {"productId": pid, "quantity": 1, "unitPrice": 1}))
    result = add_item.decide(cart, add_item.AddItem(CID, catalogue.product_id(55), 1), big)
    assert problem(result)[1] == "cart_full"


def test_remove_of_a_missing_line_is_a_404() -> None:
    cart = _cart_with(("p-0001", 1))
    assert problem(remove_item.decide(cart, remove_item.RemoveItem(CID, "p-0002"), CAT))[:2] == (
        404,
        "item_not_in_cart",
    )


def test_commands_on_a_cart_that_never_existed_are_404() -> None:
    assert problem(clear_cart.decide(Cart(CID), clear_cart.ClearCart(CID), CAT))[:2] == (404, "cart_not_found")
    cmd = update_quantity.UpdateQuantity(CID, "p-0001", 2)
    assert problem(update_quantity.decide(Cart(CID), cmd, CAT))[1] == "cart_not_found"


def test_update_and_remove_decide_their_events() -> None:
    cart = _cart_with(("p-0001", 1))
    cmd = update_quantity.UpdateQuantity(CID, "p-0001", 7)
    assert update_quantity.decide(cart, cmd, CAT) == Ok(Event(QUANTITY_UPDATED, {"productId": "p-0001", "quantity": 7}))
    assert remove_item.decide(cart, remove_item.RemoveItem(CID, "p-0001"), CAT) == Ok(
        Event(ITEM_REMOVED, {"productId": "p-0001"})
    )


@pytest.mark.parametrize(
    ("query", "expected"), [("", (0, 20)), ("offset=40&limit=10", (40, 10)), ("limit=100", (0, 100))]
)
def test_catalogue_page_parameters(query: str, expected: tuple[int, int]) -> None:
    assert rules.page(query) == Ok(expected)


@pytest.mark.parametrize(("query", "field"), [("limit=0", "limit"), ("limit=101", "limit"), ("offset=-1", "offset")])
def test_bad_catalogue_page_is_a_422(query: str, field: str) -> None:
    assert problem(rules.page(query)) == (422, "validation_failed", field)
