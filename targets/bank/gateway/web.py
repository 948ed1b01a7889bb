"""HTTP pieces of the gateway with no I/O: W3C trace context, CORS policy, header filtering, JSON replies."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

# ---- trace context (https://www.w3.org/TR/trace-context/) ------------------------------------------
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class Trace:
    trace_id: str
    span_id: str  # the gateway's own span: the parent of the backend's
    flags: str
    parent_id: str | None  # the caller's span, when it sent a valid traceparent

    @property
    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent id, flags) of a valid header, else None (a malformed one is restarted,
    as the spec says, rather than forwarded)."""
    if not value:
        return None
    m = _TRACEPARENT.fullmatch(value.strip())
    if m is None:
        return None
    version, trace_id, parent_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    return trace_id, parent_id, flags


def trace_for(incoming: str | None) -> Trace:
    """The gateway's span: a child of the caller's trace when it sent one, else a new sampled trace."""
    span = os.urandom(8).hex()
    parsed = parse_traceparent(incoming)
    if parsed is None:
        return Trace(os.urandom(16).hex(), span, "01", None)
    trace_id, parent_id, flags = parsed
    return Trace(trace_id, span, flags, parent_id)


# ---- headers -----------------------------------------------------------------------------------
#: never forwarded (RFC 9110 7.6.1: connection-specific), plus Host (the backend's own) and the
#: length (the client library sets it for the body it sends)
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"proxy-connection", b"te",
    b"trailer", b"transfer-encoding", b"upgrade",
})
NOT_FORWARDED = HOP_BY_HOP | {b"host", b"content-length", b"traceparent"}


def header(scope: Scope, name: bytes) -> str | None:
    for k, v in scope.get("headers") or ():
        if k == name:
            return v.decode("latin-1")
    return None


def forwarded_headers(scope: Scope, trace: Trace) -> list[tuple[str, str]]:
    """The request's headers for the backend: all but Host and hop-by-hop ones (and those a
    `Connection` header names), the gateway's traceparent, X-Forwarded-*."""
    raw: Iterable[tuple[bytes, bytes]] = scope.get("headers") or ()
    named = {t.strip().lower().encode() for k, v in raw if k == b"connection" for t in v.decode("latin-1").split(",")}
    out = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw if k not in NOT_FORWARDED and k not in named]
    out.append(("traceparent", trace.header))
    client = scope.get("client")
    if client:
        prior = header(scope, b"x-forwarded-for")
        out = [(k, v) for k, v in out if k.lower() != "x-forwarded-for"]
        out.append(("X-Forwarded-For", f"{prior}, {client[0]}" if prior else str(client[0])))
    host = header(scope, b"host")
    if host and header(scope, b"x-forwarded-host") is None:
        out.append(("X-Forwarded-Host", host))
    if header(scope, b"x-forwarded-proto") is None:
        out.append(("X-Forwarded-Proto", str(scope.get("scheme", "http"))))
    return out


# ---- CORS ----------------------------------------------------------------------------------------
class Cors:
    """Which browser origins may call the gateway. `*` allows any (then no credentials)."""

    def __init__(self, origins: Iterable[str], max_age_s: int = 600) -> None:
        self.origins = frozenset(o.strip().rstrip("/") for o in origins if o.strip())
        self.any = "*" in self.origins
        self.max_age = str(max_age_s)

    def allowed(self, origin: str | None) -> bool:
        return origin is not None and (self.any or origin.rstrip("/") in self.origins)

    def headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """Headers for an actual (non-preflight) response."""
        if not self.allowed(origin):
            return []
        assert origin is not None
        out = [(b"access-control-allow-origin", b"*" if self.any else origin.encode("latin-1")),
               (b"access-control-expose-headers", b"traceparent")]
        if not self.any:
            out += [(b"vary", b"Origin"), (b"access-control-allow-credentials", b"true")]
        return out

    def preflight(self, scope: Scope) -> tuple[int, list[tuple[bytes, bytes]]]:
        """(status, headers) for an OPTIONS request with Access-Control-Request-Method."""
        origin = header(scope, b"origin")
        if not self.allowed(origin):
            return 403, []
        asked = header(scope, b"access-control-request-headers") or ""
        return 204, [
            *self.headers(origin),
            (b"access-control-allow-methods", b"GET, POST, PUT, PATCH, DELETE, OPTIONS"),
            (b"access-control-allow-headers", asked.encode("latin-1") or b"content-type, traceparent"),
            (b"access-control-max-age", self.max_age.encode()),
        ]


# ---- replies -------------------------------------------------------------------------------------
async def reply_json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await reply(send, status, orjson.dumps(body), b"application/json", headers)


async def reply(send: Send, status: int, body: bytes, ctype: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), *(headers or ())],
    })
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    pass


async def read_body(receive: Receive, limit: int) -> bytes:
    """The request body, refused past `limit` bytes (a proxy must not buffer without bound)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            break
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body over {limit} bytes")
        chunks.append(chunk)
        if not msg.get("more_body", False):
            break
    return b"".join(chunks)
