"""Result values and the problem bodies they turn into."""

from __future__ import annotations

from targets.cart.result import Err, Ok, Problem, conflict, invalid, not_found


def test_ok_and_err_are_distinguishable_values() -> None:
    assert Ok(1).is_ok() and not Err("x").is_ok()
    assert Ok(1) == Ok(1) and Ok(1) != Err(1)


def test_invalid_is_a_422_with_a_field_detail() -> None:
    err = invalid("quantity must be between 1 and 99, got 0", "quantity", "quantity_out_of_range")
    assert err.error.status == 422
    assert err.error.body() == {
        "error": "quantity_out_of_range",
        "message": "quantity must be between 1 and 99, got 0",
        "details": [{"field": "quantity", "message": "quantity must be between 1 and 99, got 0"}],
    }


def test_conflict_carries_the_current_version() -> None:
    body = conflict(5, 3).error.body()
    assert body["error"] == "version_conflict"
    assert body["currentVersion"] == 5 and body["expectedVersion"] == 3


def test_not_found_has_no_details() -> None:
    assert not_found("no cart", "cart_not_found").error == Problem(404, "cart_not_found", "no cart")
