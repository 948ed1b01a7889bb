"""Minimal ASGI request/response helpers: body reading with a size cap, JSON responses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON = b"application/json"


class BodyTooLarge(Exception):
    pass


async def read_body(scope: dict[str, Any], receive: Receive, limit: int) -> bytes:
    """Read the whole body; raise BodyTooLarge as soon as it exceeds `limit` bytes."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
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
