"""A lean, pipelined Redis client for the service's few commands (GET, EVALSHA, PING).

Why not redis-py here: profiling the service put ~20% of its busy time in redis-py's asyncio
client (connection-pool checkout, retry wrapper, stream writer, a send per command). The cart
needs three commands on one connection: this client writes every command issued during one
event-loop turn as a single socket write and matches replies to callers in order (RESP is
ordered per connection), so concurrent requests share round trips instead of each paying one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Any
from urllib.parse import unquote, urlsplit

Reply = bytes | int | str | list[Any] | None


class ReplyError(Exception):
    """An error reply from Redis (`-ERR ...`, `-NOSCRIPT ...`)."""


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def encode(args: tuple[bytes | str | int, ...]) -> bytes:
    """A command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Reply | ReplyError, int]:
    """One RESP2 reply starting at `pos`: (value, position after it); raises _Incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, line = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + n]), pos + n + 2
    if kind == b":":
        return int(line), pos
    if kind == b"+":
        return line.decode(), pos
    if kind == b"-":
        return ReplyError(line.decode(errors="replace")), pos
    if kind == b"*":
        n = int(line)
        if n < 0:
            return None, pos
        items: list[Any] = []
        for _ in range(n):
            item, pos = parse(buf, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"unexpected RESP reply type {kind!r}")


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Reply]] = deque()
        self.buf = bytearray()
        self.out: list[bytes] = []
        self.flush_pending = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        pos = 0
        try:
            while pos < len(self.buf):
                value, pos = parse(self.buf, pos)
                waiter = self.waiters.popleft()
                if not waiter.done():
                    if isinstance(value, ReplyError):
                        waiter.set_exception(value)
                    else:
                        waiter.set_result(value)
        except _Incomplete:
            pass
        del self.buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        error = ConnectionError(f"redis connection lost: {exc!r}")
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(error)

    def flush(self) -> None:
        self.flush_pending = False
        out, self.out = self.out, []
        if out and self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))


class LeanRedis:
    """One connection, opened on first use and again after it is lost (pending calls fail)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", ""):
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (use redis://host:port/db)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.db = int(parts.path.strip("/") or 0)
        self.password = unquote(parts.password) if parts.password else None
        self.username = unquote(parts.username) if parts.username else None
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is None or self._proto.closed:
                loop = asyncio.get_running_loop()
                _, proto = await loop.create_connection(_Protocol, self.host, self.port)
                self._proto = proto
                if self.password is not None:
                    auth = (self.username, self.password) if self.username else (self.password,)
                    await self._call(proto, ("AUTH", *auth))
                if self.db:
                    await self._call(proto, ("SELECT", self.db))
            return self._proto

    def _call(self, proto: _Protocol, args: tuple[bytes | str | int, ...]) -> asyncio.Future[Reply]:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Reply] = loop.create_future()
        proto.waiters.append(waiter)
        proto.out.append(encode(args))
        if not proto.flush_pending:
            proto.flush_pending = True
            loop.call_soon(proto.flush)
        return waiter

    async def execute(self, *args: bytes | str | int) -> Reply:
        proto = self._proto
        if proto is None or proto.closed:
            proto = await self._connection()
        return await self._call(proto, args)

    async def get(self, key: str) -> bytes | None:
        value = await self.execute("GET", key)
        assert value is None or isinstance(value, bytes)
        return value

    async def ping(self) -> None:
        await self.execute("PING")

    def script(self, source: str) -> Script:
        return Script(self, source)

    async def aclose(self) -> None:
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.flush()
            proto.transport.close()


class Script:
    """A Lua script run by its SHA1 (EVALSHA); loaded with EVAL when the server lacks it."""

    def __init__(self, client: LeanRedis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: list[str], args: list[bytes | str | int]) -> Reply:
        try:
            return await self.client.execute("EVALSHA", self.sha, len(keys), *keys, *args)
        except ReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
            return await self.client.execute("EVAL", self.source, len(keys), *keys, *args)
