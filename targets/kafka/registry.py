"""Confluent Schema Registry: a REST client, and a small embedded registry for a run that has none.

The client speaks the subset every Confluent-compatible registry serves (Confluent, Redpanda,
Karapace, Apicurio's ccompat API): register a schema under a subject, fetch a schema by id.
The embedded registry serves that subset plus the subject listings, in memory, on 127.0.0.1, so
that a user's own stream processor can resolve the ids of a run that brought no registry.
Credentials go in the URL (`https://user:secret@host`), as the Confluent clients accept them.
"""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp
import fastavro
from aiohttp import web

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class RegistryError(RuntimeError):
    """The registry refused or did not answer; the message says what it said."""


def canonical(schema: str | dict[str, Any] | list[Any]) -> str:
    """One text per schema document, so that the same schema gets the same id everywhere."""
    doc = json.loads(schema) if isinstance(schema, str) else schema
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


class RegistryClient:
    """Confluent REST: `register(subject, schema) -> id` (idempotent) and `get(id) -> schema | None`."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url)
        self.headers: dict[str, str] = {}
        if parts.username:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        self.url = parts._replace(netloc=netloc).geturl().rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self.headers)
        return self._session

    async def register(self, subject: str, schema: str) -> int:
        try:
            async with self._http().post(f"{self.url}/subjects/{subject}/versions", data=json.dumps(
                    {"schema": schema}), headers={"Content-Type": CONTENT_TYPE}) as resp:
                body = await _json(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the schema registry at {self.url} ({_reason(exc)})") from None
        if resp.status != 200 or not isinstance(body, dict) or "id" not in body:
            raise RegistryError(f"the schema registry at {self.url} refused subject {subject!r}: "
                                f"HTTP {resp.status} {_message(body)}")
        return int(body["id"])

    async def get(self, schema_id: int) -> str | None:
        try:
            async with self._http().get(f"{self.url}/schemas/ids/{schema_id}") as resp:
                body = await _json(resp)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConnectionError(f"cannot reach the schema registry at {self.url} ({_reason(exc)})") from None
        if resp.status == 404:
            return None
        if resp.status != 200 or not isinstance(body, dict) or "schema" not in body:
            raise RegistryError(f"schema id {schema_id} from {self.url}: HTTP {resp.status} {_message(body)}")
        return str(body["schema"])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


async def _json(resp: aiohttp.ClientResponse) -> Any:
    text = await resp.text()
    try:
        return json.loads(text)
    except ValueError:
        return text[:200]


def _message(body: Any) -> str:
    if isinstance(body, dict) and "message" in body:
        return f"(error {body.get('error_code', '?')}: {body['message']})"
    return repr(body)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


class _Store:
    """Ids are global (one per distinct schema), versions per subject, as Confluent numbers them."""

    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self.subjects: dict[str, list[int]] = {}

    def register(self, subject: str, schema: str) -> int:
        text = canonical(schema)
        sid = self.ids.get(text)
        if sid is None:
            sid = self.ids[text] = len(self.ids) + 1
            self.by_id[sid] = text
        versions = self.subjects.setdefault(subject, [])
        if sid not in versions:
            versions.append(sid)
        return sid


def _error(status: int, code: int, message: str) -> web.Response:
    return web.json_response({"error_code": code, "message": message}, status=status, content_type=CONTENT_TYPE)


def _ok(body: Any) -> web.Response:
    return web.json_response(body, content_type=CONTENT_TYPE)


def registry_app() -> web.Application:
    """The embedded registry's routes (Confluent's REST API, Avro only)."""
    store = _Store()

    async def register(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.text())
            schema = body["schema"]
            if body.get("schemaType", "AVRO") != "AVRO":
                return _error(422, 42201, f"schemaType {body['schemaType']!r}: this registry holds Avro only")
            fastavro.parse_schema(json.loads(schema))
        except Exception as exc:  # fastavro raises several kinds on a bad schema
            return _error(422, 42201, f"Invalid schema: {type(exc).__name__}: {exc}")
        return _ok({"id": store.register(request.match_info["subject"], schema)})

    async def by_id(request: web.Request) -> web.Response:
        text = store.by_id.get(int(request.match_info["id"]))
        if text is None:
            return _error(404, 40403, "Schema not found")
        return _ok({"schema": text})

    async def subjects(request: web.Request) -> web.Response:
        return _ok(sorted(store.subjects))

    async def versions(request: web.Request) -> web.Response:
        ids = store.subjects.get(request.match_info["subject"])
        if ids is None:
            return _error(404, 40401, "Subject not found")
        return _ok(list(range(1, len(ids) + 1)))

    async def version(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        ids = store.subjects.get(subject)
        if ids is None:
            return _error(404, 40401, "Subject not found")
        v = request.match_info["version"]
        n = len(ids) if v in ("latest", "-1") else int(v) if v.isdigit() else 0
        if not 1 <= n <= len(ids):
            return _error(404, 40402, "Version not found")
        return _ok({"subject": subject, "version": n, "id": ids[n - 1], "schema": store.by_id[ids[n - 1]]})

    app = web.Application()
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_get("/schemas/ids/{id:\\d+}", by_id)
    app.router.add_get("/subjects", subjects)
    app.router.add_get("/subjects/{subject}/versions", versions)
    app.router.add_get("/subjects/{subject}/versions/{version}", version)
    return app


@contextlib.asynccontextmanager
async def embedded_registry(host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve an in-memory Confluent-compatible registry for the duration; yields its URL."""
    runner = web.AppRunner(registry_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        bound = runner.addresses[0][1]
        yield f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
