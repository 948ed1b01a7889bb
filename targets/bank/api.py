"""The REST query API and /metrics as a raw ASGI app: four routes do not need a framework.

Every malformed request gets a 4xx with a JSON body saying what is wrong; a database that is away
gets a 503, never a 500. The API serves GET only and never reads a request body, so a client that
announces more body than it sends cannot hold a handler (the answer is a 405 at once).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from targets.bank import db
from targets.bank.metrics import REGISTRY
from targets.bank.retry import is_transient
from targets.bank.topics import BASE_SCHEMA

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]

_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_COMPTE = re.compile(r"^/api/v1/comptes/([^/]+)$")
_TXS = re.compile(r"^/api/v1/comptes/([^/]+)/transactions$")
_CLIENT = re.compile(r"^/api/v1/clients/([^/]+)/comptes$")
MAX_LIMIT = 1000
#: ASCII digits only: str.isdigit() also accepts "²" or "٣", which int() then refuses
_UINT = re.compile(r"[0-9]{1,9}")


class Status:
    """What /health reports; the consumer loop keeps it current."""

    def __init__(self, instance: int) -> None:
        self.instance = instance
        self.kafka = "connecting"
        self.assigned: int = 0
        self.ready = False


class App:
    """Serves the ledger in `schema` (the run's namespace; `bancaire` for the seed's names)."""

    def __init__(self, pool: asyncpg.Pool, status: Status, schema: str = BASE_SCHEMA) -> None:
        self.pool = pool
        self.status = status
        self.schema = db.checked(schema)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            await self._route(scope, send)
        except Exception as exc:
            if not is_transient(exc) and not isinstance(exc, asyncpg.PostgresError):
                raise
            log.warning("%s %s: database unavailable (%s)", scope["method"], scope["path"], type(exc).__name__)
            await _json(send, 503, {"error": "database_unavailable", "detail": type(exc).__name__})

    async def _route(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        if scope["method"] != "GET":
            await _json(send, 405, {"error": "method_not_allowed", "detail": "only GET is served"})
        elif path == "/metrics":
            body = generate_latest(REGISTRY)
            await _raw(send, 200, body, CONTENT_TYPE_LATEST.encode())
        elif path == "/api/v1/health":
            await self._health(send)
        elif m := _TXS.match(path):
            await self._transactions(send, m.group(1), _query(scope))
        elif m := _COMPTE.match(path):
            await self._compte(send, m.group(1))
        elif m := _CLIENT.match(path):
            await self._client(send, m.group(1))
        else:
            await _json(send, 404, {"error": "not_found", "detail": f"no route for {path}"})

    async def _health(self, send: Send) -> None:
        try:
            await self.pool.fetchval("SELECT 1")
            pg = "connected"
        except Exception as exc:
            pg = f"error: {type(exc).__name__}"
        st = self.status
        healthy = st.ready and pg == "connected"
        await _json(
            send,
            200 if healthy else 503,
            {
                "status": "healthy" if healthy else "starting",
                "kafka": st.kafka,
                "postgres": pg,
                "instance": st.instance,
                "assigned_partitions": st.assigned,
            },
        )

    async def _compte(self, send: Send, cid: str) -> None:
        if not _ID.fullmatch(cid):
            await _invalid(send, "id", "account id must be 1-64 chars of [A-Za-z0-9_.:-]")
            return
        row = await db.get_compte(self.pool, cid, self.schema)
        if row is None:
            await _json(send, 404, {"error": "compte_not_found", "id": cid})
        else:
            await _json(send, 200, row)

    async def _transactions(self, send: Send, cid: str, query: dict[str, str]) -> None:
        if not _ID.fullmatch(cid):
            await _invalid(send, "id", "account id must be 1-64 chars of [A-Za-z0-9_.:-]")
            return
        raw = query.get("limit", "10")
        limit = parse_uint(raw, 1, MAX_LIMIT)
        if limit is None:
            await _invalid(send, "limit", f"limit must be an integer in 1..{MAX_LIMIT}", raw[:40])
            return
        rows = await db.transactions_of(self.pool, cid, limit, self.schema)
        if rows is None:
            await _json(send, 404, {"error": "compte_not_found", "id": cid})
        else:
            await _json(send, 200, {"transactions": rows})

    async def _client(self, send: Send, client_id: str) -> None:
        if not _ID.fullmatch(client_id):
            await _invalid(send, "client_id", "client id must be 1-64 chars of [A-Za-z0-9_.:-]")
            return
        await _json(send, 200, {"comptes": await db.comptes_of_client(self.pool, client_id, self.schema)})


def parse_uint(raw: str, lo: int, hi: int) -> int | None:
    """The integer `raw` spells in ASCII digits if it is in lo..hi, else None."""
    if not _UINT.fullmatch(raw):
        return None
    n = int(raw)
    return n if lo <= n <= hi else None


def _query(scope: Scope) -> dict[str, str]:
    """Percent-decoded as UTF-8; bytes that are not become U+FFFD (then fail validation, not the server)."""
    return dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True, errors="replace"))


async def _invalid(send: Send, field: str, msg: str, got: str | None = None) -> None:
    detail: dict[str, Any] = {"loc": field, "msg": msg}
    if got is not None:
        detail["input"] = got
    await _json(send, 422, {"error": "validation_error", "detail": [detail]})


async def _json(send: Send, status: int, body: Any) -> None:
    await _raw(send, status, orjson.dumps(body), b"application/json")


async def _raw(send: Send, status: int, body: bytes, ctype: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", ctype), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
