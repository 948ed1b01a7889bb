"""The driver's HTTP side: op kinds mapped to requests on a pooled keep-alive connection set."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from harness.transports.http1 import Http1Pool

JSON_HEADERS = {"Content-Type": "application/json"}

WRITE_KINDS = frozenset({"add", "update", "remove", "clear"})
READ_KINDS = frozenset({"view", "summary", "history", "browse", "health"})
KINDS = WRITE_KINDS | READ_KINDS


def request_for(kind: str, p: dict[str, Any]) -> tuple[str, str, bytes | None]:
    """(method, path, body) of an op; `p` holds cart, product, quantity as the kind needs."""
    if kind == "add":
        body = orjson.dumps({"productId": p["product"], "quantity": p["quantity"]})
        return "POST", f"/api/carts/{p['cart']}/items", body
    if kind == "update":
        return "PATCH", f"/api/carts/{p['cart']}/items/{p['product']}", orjson.dumps({"quantity": p["quantity"]})
    if kind == "remove":
        return "DELETE", f"/api/carts/{p['cart']}/items/{p['product']}", None
    if kind == "clear":
        return "DELETE", f"/api/carts/{p['cart']}/items", None
    if kind == "view":
        return "GET", f"/api/carts/{p['cart']}", None
    if kind == "summary":
        return "GET", f"/api/carts/{p['cart']}/summary", None
    if kind == "history":
        return "GET", f"/api/carts/{p['cart']}/history", None
    if kind == "browse":
        return "GET", f"/api/products?offset={p.get('offset', 0)}&limit={p.get('limit', 20)}", None
    if kind == "health":
        return "GET", "/health", None
    raise ValueError(f"unknown cart op kind {kind!r}; known: {sorted(KINDS)}")


class AiohttpClient:
    """aiohttp session with a bounded keep-alive pool: the general-purpose alternative."""

    def __init__(self, base_url: str, connections: int = 64) -> None:
        self.base_url = base_url
        self.session = aiohttp.ClientSession(
            base_url,
            connector=aiohttp.TCPConnector(limit=connections, keepalive_timeout=60, force_close=False),
            timeout=aiohttp.ClientTimeout(total=None),
            skip_auto_headers=("User-Agent",),
            auto_decompress=False,
        )

    async def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, str | None]:
        """Return (status, body, etag)."""
        hdrs = JSON_HEADERS if body is not None and headers is None else headers
        if body is not None and headers is not None:
            hdrs = {**JSON_HEADERS, **headers}
        async with self.session.request(method, path, data=body, headers=hdrs) as resp:
            data = await resp.read()
            return resp.status, data, resp.headers.get("ETag")

    async def close(self) -> None:
        await self.session.close()


class Http1Client(Http1Pool):
    """The lean client (see targets/http1.py), the driver's default."""

    def __init__(self, base_url: str, connections: int = 64) -> None:
        super().__init__(base_url, connections)
        self.base_url = base_url


CartClient = Http1Client


def open_client(base_url: str, connections: int = 64, kind: str = "http1") -> Http1Client | AiohttpClient:
    """`kind`: "http1" (lean, default) or "aiohttp"."""
    if kind == "aiohttp":
        return AiohttpClient(base_url, connections)
    if kind != "http1":
        raise ValueError(f"unknown client {kind!r}; use 'http1' or 'aiohttp'")
    return Http1Client(base_url, connections)
