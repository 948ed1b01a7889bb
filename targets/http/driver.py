"""HttpDriver: an HTTP request per op, described in `[target_options]`.

    [target_options]
    url = "http://127.0.0.1:8080/api/health"   # required; a base URL when `requests` give paths
    method = "GET"
    headers = { "Authorization" = "Bearer x" }
    body = '{{"n": {seq}}}'                   # braces doubled; or body_file = "payload.json"
    connections = 64                            # keep-alive connections (HTTP/1.1)
    ok_status = [200, 201]                      # default: any 2xx; else error kind http_<code>
    verify = true                               # false: accept a self-signed certificate
    data_file = "users.csv"                     # rows feed {row.COLUMN} placeholders
    [target_options.requests.login]             # per op kind: method, url or path, headers, body
    method = "POST"
    path = "/login"
    body = '{{"user": "{row.name}"}}'
    [target_options.check]                      # optional, like k6's check(): a failed check is an
    status = 200                                # error of kind check_status / check_json
    json = { "status" = "ok" }                  # dotted paths into the JSON answer

Placeholders are those of harness.templating. The service must be reachable when the run starts:
an unreachable URL is refused before any op is sent, naming the option.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.protocol import OK, Driver, DriverContext, Op, Result
from harness.templating import DataRows, OpVars, Template, TemplateError, load_rows
from harness.transports.http1 import Http1Pool

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestOptions(_Strict):
    method: str | None = None
    url: str | None = None
    path: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    body_file: str | None = None

    @field_validator("method")
    @classmethod
    def _method(cls, v: str | None) -> str | None:
        if v is not None and v.upper() not in METHODS:
            raise ValueError(f"unknown method {v!r}; use one of {', '.join(METHODS)}")
        return v.upper() if v else v


class CheckOptions(_Strict):
    status: int | None = None
    json_equals: dict[str, Any] = Field(default_factory=dict, alias="json")


class HttpOptions(_Strict):
    url: str
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    body_file: str | None = None
    requests: dict[str, RequestOptions] = Field(default_factory=dict)
    connections: int = Field(64, ge=1, le=10_000)
    ok_status: list[int] | None = None
    verify: bool = True
    data_file: str | None = None
    data_order: Literal["sequential", "random"] = "sequential"
    check: CheckOptions | None = None
    # set by a target that launches its own server (echo): what it yielded, merged in by the harness
    pids: dict[str, int] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{v!r} is not an http:// or https:// URL")
        return v

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        if v.upper() not in METHODS:
            raise ValueError(f"unknown method {v!r}; use one of {', '.join(METHODS)}")
        return v.upper()


class _Request:
    """One op kind's request, compiled: templates checked, static parts encoded once."""

    __slots__ = ("body", "headers", "method", "path")

    def __init__(self, method: str, path: Template, headers: dict[str, Template], body: Template | None) -> None:
        self.method, self.path, self.headers, self.body = method, path, headers, body


def _read(path: str, where: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None


def _lookup(doc: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isascii() and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return _MISSING
    return doc


_MISSING = object()


class HttpDriver(Driver):
    name: ClassVar[str] = "http"
    Options: ClassVar[type[BaseModel]] = HttpOptions

    def __init__(self) -> None:
        self._pool: Http1Pool | None = None
        self._requests: dict[str, _Request] = {}
        self._default: _Request | None = None
        self._rows: DataRows | None = None
        self._ok: frozenset[int] | None = None
        self._check: CheckOptions | None = None
        self._ctx: DriverContext | None = None
        self._seq = 0

    async def start(self, ctx: DriverContext) -> None:
        o = HttpOptions.model_validate(ctx.options)
        self._ctx = ctx
        base = urlsplit(o.url)
        if o.data_file:
            self._rows = DataRows(await asyncio.to_thread(load_rows, o.data_file, "target_options.data_file"),
                                  o.data_order, ctx.process_index + 1)
        columns = self._rows.columns if self._rows is not None else None
        self._default = await self._compile("target_options", o.method, o.url, None, o.headers, o.body,
                                            o.body_file, base, columns)
        for kind, r in o.requests.items():
            where = f"target_options.requests.{kind}"
            self._requests[kind] = await self._compile(
                where, r.method or o.method, r.url, r.path, {**o.headers, **r.headers}, r.body if r.body is not None
                else (o.body if r.body_file is None else None), r.body_file, base, columns)
        self._ok = frozenset(o.ok_status) if o.ok_status else None
        self._check = o.check
        origin = f"{base.scheme}://{base.netloc}"
        await _reachable(base, "target_options.url")
        self._pool = Http1Pool(origin, o.connections, verify=o.verify)

    async def _compile(self, where: str, method: str, url: str | None, path: str | None, headers: dict[str, str],
                       body: str | None, body_file: str | None, base: Any, columns: set[str] | None) -> _Request:
        if url is not None:
            parts = urlsplit(url)
            if parts.netloc and parts.netloc != base.netloc:
                raise TemplateError(f"{where}.url: {url!r} is on another host than target_options.url; "
                                    "one run drives one host")
            target = parts.path or "/"
            if parts.query:
                target += "?" + parts.query
        else:
            target = path or "/"
        if not target.startswith("/"):
            target = "/" + target
        if body_file is not None:
            body = await asyncio.to_thread(_read, body_file, f"{where}.body_file")
        return _Request(method.upper(), Template(target, f"{where}.path", columns),
                        {k: Template(v, f"{where}.headers.{k}", columns) for k, v in headers.items()},
                        Template(body, f"{where}.body", columns) if body is not None else None)

    async def send(self, op: Op) -> Result | None:
        req = self._requests.get(op.kind, self._default)
        assert req is not None and self._pool is not None and self._ctx is not None
        self._seq += 1
        values = OpVars(op, self._seq, self._ctx.process_index, self._ctx.run_id,
                        self._rows.pick(self._seq) if self._rows is not None else None)
        headers = {k: t.render(values) for k, t in req.headers.items()} if req.headers else None
        body = req.body.render(values).encode() if req.body is not None else None
        status, payload, _ = await self._pool.call(req.method, req.path.render(values), body, headers)
        if (status not in self._ok) if self._ok is not None else not 200 <= status < 300:
            return Result(error=f"http_{status}")
        if self._check is not None:
            return _check(self._check, status, payload)
        return OK

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()


def _check(check: CheckOptions, status: int, payload: bytes) -> Result:
    if check.status is not None and status != check.status:
        return Result(error="check_status")
    if check.json_equals:
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return Result(error="check_json")
        for path, expected in check.json_equals.items():
            if _lookup(doc, path) != expected:
                return Result(error="check_json")
    return OK


async def _reachable(url: Any, where: str, timeout_s: float = 5.0) -> None:
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConnectionError(f"{where}: cannot connect to {url.scheme}://{url.netloc} ({reason})") from None
    writer.close()
    await writer.wait_closed()
