"""The REST API's request checks, which answer before any database access."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from targets.bank.api import App, Status, parse_uint


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), ("1000", 1000), ("0010", 10), ("0", None), ("1001", None), ("²", None), ("٣", None), ("1e3", None),
     ("-1", None), (" 1", None), ("1\n", None), ("", None), ("9" * 10_000, None)],
)  # fmt: skip
def test_numbers_are_ascii_digits_within_bounds(raw: str, expected: int | None) -> None:
    assert parse_uint(raw, 1, 1000) == expected


async def _get(path: str, query: bytes = b"", method: str = "GET") -> tuple[int, Any]:
    sent: list[dict[str, Any]] = []

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    async def receive() -> dict[str, Any]:
        raise AssertionError("the API never reads a request body")

    scope = {"type": "http", "method": method, "path": path, "query_string": query}
    await App(None, Status(0))(scope, receive, send)  # type: ignore[arg-type]
    return sent[0]["status"], orjson.loads(sent[1]["body"])


@pytest.mark.parametrize(
    "query", [b"limit=%C2%B2", b"limit=%E2%91%A0", b"limit=%FF", b"limit=", b"limit=99999999999999999999", b"limit=%00"]
)
async def test_a_malformed_limit_is_a_422_naming_the_parameter(query: bytes) -> None:
    status, body = await _get("/api/v1/comptes/C1/transactions", query)
    assert status == 422 and body["detail"][0]["loc"] == "limit"


@pytest.mark.parametrize("cid", ["C%001", "C\x001", "C1\n", "x" * 65, "\u00e9"])
async def test_a_malformed_account_id_is_a_422(cid: str) -> None:
    status, body = await _get(f"/api/v1/comptes/{cid}")
    assert status == 422 and body["error"] == "validation_error"


async def test_a_post_is_refused_without_reading_its_body() -> None:
    status, body = await _get("/api/v1/comptes/C1", method="POST")
    assert status == 405 and body["error"] == "method_not_allowed"
