"""Forward a request to a backend service (the bank REST API): headers, trace context, timeouts.

One aiohttp client session (already a dependency, pooled keep-alive connections) for every
backend. A backend that refuses, resets or does not answer within the timeout gets the caller a
503 with a JSON body saying which service and why, never a hang or a bare 502. Safe methods
(GET, HEAD, OPTIONS) are tried on the next instance when one cannot be reached.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from targets.bank.gateway.metrics import BACKEND_ERRORS
from targets.bank.gateway.web import HOP_BY_HOP, Scope, Send, Trace, forwarded_headers, reply, reply_json

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_NOT_RETURNED = HOP_BY_HOP | {b"content-length", b"date", b"server"}


class Unavailable(Exception):
    """The backend gave no answer: `kind` is "timeout" or "unreachable"."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


class Backend:
    """Instances of one service (`urls`, round robin) behind a path prefix.

    A request for `<prefix><rest>` goes to `<url><target_prefix><rest>`: the gateway's
    `/api/v1/bancaire/comptes/C1` is the bank API's `/api/v1/comptes/C1`.
    """

    def __init__(self, name: str, urls: list[str], session: aiohttp.ClientSession, timeout_s: float,
                 prefix: str, target_prefix: str, max_response_bytes: int = 8 << 20) -> None:
        if not urls:
            raise ValueError(f"{name}: no backend URL")
        self.name = name
        self.urls = [u.rstrip("/") for u in urls]
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 2.0))
        self.timeout_s = timeout_s
        self.prefix = prefix
        self.target_prefix = target_prefix
        self.max_response_bytes = max_response_bytes
        self._next = itertools.cycle(range(len(self.urls)))

    def target_path(self, path: str) -> str:
        return self.target_prefix + path[len(self.prefix):]

    async def request(self, method: str, path: str, query: bytes, headers: list[tuple[str, str]],
                      body: bytes | None) -> tuple[str, Answer]:
        """(instance URL, answer); raises Unavailable when no instance answered."""
        first = next(self._next)
        order = [(first + i) % len(self.urls) for i in range(len(self.urls))]
        if method not in SAFE_METHODS:
            order = order[:1]  # a POST that may have reached the backend is not sent twice
        target = self.target_path(path) + (f"?{query.decode('latin-1')}" if query else "")
        failure = Unavailable("unreachable", f"{self.name}: no instance")
        for i in order:
            base = self.urls[i]
            try:
                return base, await self._once(method, base + target, headers, body)
            except TimeoutError:
                failure = Unavailable("timeout", f"{self.name} at {base} did not answer within {self.timeout_s:g} s")
            except aiohttp.ClientConnectorError as exc:
                failure = Unavailable("unreachable", f"cannot connect to {self.name} at {base}: {exc.strerror or exc}")
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError) as exc:
                failure = Unavailable("unreachable", f"{self.name} at {base} dropped the connection: "
                                                     f"{type(exc).__name__}")
            BACKEND_ERRORS.labels(self.name, failure.kind).inc()
            log.warning("%s %s: %s", method, path, failure.detail)
            if failure.kind == "timeout":
                break  # slow, not down: another try would double the caller's wait
        raise failure

    async def _once(self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None) -> Answer:
        async with self.session.request(method, url, headers=headers, data=body, timeout=self.timeout,
                                        allow_redirects=False) as resp:
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(65536):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise aiohttp.ClientPayloadError(f"response over {self.max_response_bytes} bytes")
                chunks.append(chunk)
            kept = [(k.lower(), v) for k, v in resp.raw_headers if k.lower() not in _NOT_RETURNED]
            return Answer(resp.status, kept, b"".join(chunks))

    async def forward(self, scope: Scope, send: Send, trace: Trace, body: bytes | None,
                      extra: list[tuple[bytes, bytes]]) -> tuple[int, str]:
        """Answer the ASGI request from the backend; returns (status sent, instance or "")."""
        method = scope["method"]
        try:
            base, answer = await self.request(method, scope["path"], scope.get("query_string", b""),
                                              forwarded_headers(scope, trace), body)
        except Unavailable as exc:
            await reply_json(send, 503, unavailable_body(self.name, exc, trace),
                             [(b"retry-after", b"1"), *extra])
            return 503, ""
        headers = [*answer.headers, *extra]
        ctype = next((v for k, v in headers if k == b"content-type"), b"application/octet-stream")
        await reply(send, answer.status, answer.body, ctype, [(k, v) for k, v in headers if k != b"content-type"])
        return answer.status, base


def unavailable_body(service: str, exc: Unavailable, trace: Trace) -> dict[str, Any]:
    return {
        "error": "service_timeout" if exc.kind == "timeout" else "service_unavailable",
        "service": service,
        "detail": exc.detail,
        "trace_id": trace.trace_id,
    }


async def probe(session: aiohttp.ClientSession, url: str, timeout_s: float) -> dict[str, Any]:
    """One instance's /api/v1/health, for the aggregated health: its status and body, or why none."""
    try:
        async with session.get(url.rstrip("/") + "/api/v1/health",
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = None
            return {"url": url, "http_status": resp.status, "healthy": resp.status == 200, "body": body}
    except TimeoutError:
        return {"url": url, "healthy": False, "error": f"no answer within {timeout_s:g} s"}
    except aiohttp.ClientError as exc:
        return {"url": url, "healthy": False, "error": f"{type(exc).__name__}: {exc}"}
