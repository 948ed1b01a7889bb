"""Minimal ASGI request/response helpers: body reading with a size cap and a time limit, JSON responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"


class BodyTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    """The client announced more body than it sent within the time limit."""


async def read_body(scope: dict[str, Any], receive: Receive, limit: int, timeout_s: float = 10.0) -> bytes:
    """Read the whole body; raise BodyTooLarge as soon as it exceeds `limit` bytes, BodyTimeout
    when it is not complete after `timeout_s` (a Content-Length above the bytes sent would
    otherwise hold the request, and its connection, until the client gives up)."""
    for name, value in scope["headers"]:
        # bytes.isdigit() is ASCII-only; a length with more digits than the limit is above it
        if name == b"content-length" and value.isdigit() and (len(value) > 12 or int(value) > limit):
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                message = await receive()
                chunk = message.get("body", b"")
                if chunk:
                    size += len(chunk)
                    if size > limit:
                        raise BodyTooLarge
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
    except TimeoutError:
        raise BodyTimeout from None


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def respond_json(send: Send, status: int, data: Any, extra: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await respond(send, status, orjson.dumps(data), JSON, extra)


def etag(version: int) -> tuple[bytes, bytes]:
    return (b"etag", f'"{version}"'.encode())
