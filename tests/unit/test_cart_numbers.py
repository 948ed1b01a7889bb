"""Numbers from the outside (If-Match, offset, limit) are plain ASCII digits within bounds, and
anything else is a readable 422, never an exception (which would be a 500)."""

from __future__ import annotations

import pytest

from targets.cart.commands import rules
from targets.cart.result import Err, Ok


@pytest.mark.parametrize(("raw", "value"), [("0", 0), ("7", 7), ("0042", 42), ("2147483647", 2147483647)])
def test_ascii_digits_within_bounds_are_a_number(raw: str, value: int) -> None:
    assert rules.ascii_int(raw, 0, rules.MAX_VERSION) == value


@pytest.mark.parametrize(
    "raw",
    ["", "²", "①", "٣", "１", "-1", "+1", " 1", "1.0", "2147483648", "999999999999999999999999999", "9" * 10_000],
    ids=["empty", "superscript", "circled", "arabic-indic", "fullwidth", "minus", "plus", "space", "decimal",
         "above-int32", "27-digits", "10000-digits"],
)  # fmt: skip
def test_anything_else_is_not_a_number(raw: str) -> None:
    assert rules.ascii_int(raw, 0, rules.MAX_VERSION) is None


@pytest.mark.parametrize("header", ['"999999999999999999999999999"', '"²"', '"' + "1" * 10_000 + '"', 'W/"-3"'])
def test_if_match_that_is_no_version_is_a_422_on_the_header(header: str) -> None:
    result = rules.expected_version(header)
    assert isinstance(result, Err)
    assert (result.error.status, result.error.details[0]["field"]) == (422, "If-Match")


def test_if_match_at_the_largest_version_is_accepted() -> None:
    assert rules.expected_version('"2147483647"') == Ok(2147483647)


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=²", "limit"), ("offset=①", "offset"), ("limit=101", "limit"), ("offset=" + "9" * 5000, "offset")],
)
def test_page_numbers_that_are_not_ascii_digits_in_range_are_a_422(query: str, field: str) -> None:
    result = rules.page(query)
    assert isinstance(result, Err)
    assert (result.error.status, result.error.details[0]["field"]) == (422, field)


def test_percent_encoded_superscript_is_refused_after_decoding() -> None:
    result = rules.page("limit=%C2%B2")
    assert isinstance(result, Err) and result.error.details[0]["field"] == "limit"
