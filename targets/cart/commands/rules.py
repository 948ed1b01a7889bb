"""Validation rules shared by the command validators."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl

from targets.cart.catalogue import Product
from targets.cart.result import Err, Ok, Problem, Result, invalid

MIN_QUANTITY = 1
MAX_QUANTITY = 99  # per line
MAX_LINES = 50  # distinct products per cart
MAX_PAGE = 100  # catalogue items per page
MAX_VERSION = 2**31 - 1  # event_version is a PostgreSQL integer


def ascii_int(raw: str, low: int, high: int) -> int | None:
    """`raw` as an integer in [low, high] if it is plain ASCII digits, else None.

    str.isdigit() alone accepts "²" and "①" (which int() then refuses), and int() of a
    10,000-digit string raises: both must be a 4xx, so digits are checked as ASCII and the
    length is bounded before converting.
    """
    if not raw or not raw.isascii() or not raw.isdigit() or len(raw) > len(str(high)):
        return None
    value = int(raw)
    return value if low <= value <= high else None


def cart_id(raw: str) -> Result[str, Problem]:
    """Cart ids are UUIDs (the event store's aggregate_id); normalised to canonical form."""
    try:
        return Ok(str(uuid.UUID(raw)))
    except ValueError:
        return invalid(f"cartId must be a UUID, got {raw[:64]!r}", "cartId")


def quantity(body: dict[str, Any]) -> Result[int, Problem]:
    q = body.get("quantity")
    if q is None:
        return invalid("quantity is required", "quantity")
    if isinstance(q, bool) or not isinstance(q, int):
        return invalid(f"quantity must be an integer, got {type(q).__name__}", "quantity")
    if not MIN_QUANTITY <= q <= MAX_QUANTITY:
        return invalid(
            f"quantity must be between {MIN_QUANTITY} and {MAX_QUANTITY}, got {q}",
            "quantity",
            "quantity_out_of_range",
        )
    return Ok(q)


def product(raw: Any, catalogue: dict[str, Product]) -> Result[Product, Problem]:
    if not isinstance(raw, str) or not raw:
        return invalid("productId must be a non-empty string", "productId")
    found = catalogue.get(raw)
    if found is None:
        return invalid(f"unknown product {raw[:64]!r}", "productId", "unknown_product")
    return Ok(found)


def expected_version(if_match: str | None) -> Result[int | None, Problem]:
    """Parse an If-Match header: `"3"`, `W/"3"` or `3`; `*` means no expectation."""
    if if_match is None:
        return Ok(None)
    raw = if_match.strip().removeprefix("W/").strip('"')
    if raw == "*":
        return Ok(None)
    version = ascii_int(raw, 0, MAX_VERSION)
    if version is None:
        return Err(
            Problem(
                422,
                "validation_failed",
                f"If-Match must be a cart version, got {if_match[:32]!r}",
                [{"field": "If-Match", "message": f'expected a version number such as "3", at most {MAX_VERSION}'}],
            )
        )
    return Ok(version)


def page(query: str) -> Result[tuple[int, int], Problem]:
    """`offset` and `limit` of a catalogue page from a query string (defaults 0 and 20)."""
    params = dict(parse_qsl(query)) if query else {}
    out = []
    for name, default, low, high in (("offset", 0, 0, 1_000_000), ("limit", 20, 1, MAX_PAGE)):
        raw = params.get(name, str(default))
        value = ascii_int(raw, low, high)
        if value is None:
            return invalid(f"{name} must be an integer between {low} and {high}, got {raw[:16]!r}", name)
        out.append(value)
    return Ok((out[0], out[1]))
