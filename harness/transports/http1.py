"""A lean HTTP/1.1 keep-alive client: asyncio protocols + httptools, nothing else.

The load generator shares two cores with the service; a general-purpose client spends
~150 µs of CPU per request (aiohttp, measured here), this one a fraction of that, which is
the difference between measuring the service and measuring the client at 2,000 req/s.
It speaks only what the driver needs: one request at a time per connection, Content-Length
bodies, no redirects; TLS when the URL is https (with `verify=False` for a staging server's
self-signed certificate).

A request abandoned while its answer is on the way (the harness timed the op out) keeps its
connection: the answer is read and dropped, then the connection goes back to the pool. Closing it
instead would cost a reconnect per timed-out op exactly when the service is overloaded, which
lowers the throughput the service can reach and keeps it overloaded after the cause has gone.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

import httptools

DRAIN_TIMEOUT_S = 30.0  # an abandoned request's answer not in by then: the connection is closed

Drained = Callable[["_Connection", bool], None]


class _Connection(asyncio.Protocol):
    __slots__ = ("_body", "_drained", "_etag", "_parser", "_waiter", "closed", "keep_alive", "transport")

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[tuple[int, bytes, str | None]] | None = None
        self._body: list[bytes] = []
        self._etag: str | None = None
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._drained: Drained | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("server closed the connection"))
        self._finish_drain(False)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 4 and name.lower() == b"etag":
            self._etag = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.keep_alive = self._parser.should_keep_alive()
        body = b"".join(self._body)
        self._body = []
        etag, self._etag = self._etag, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self._parser.get_status_code(), body, etag))
        self._finish_drain(True)

    def drain(self, done: Drained, loop: asyncio.AbstractEventLoop) -> None:
        """The caller gave up on the answer in flight: read it, then call `done(self, ok)`."""
        if self._waiter is None:  # it came (or the connection went) between the cancel and now
            done(self, not self.closed)
            return
        self._drained = done
        loop.call_later(DRAIN_TIMEOUT_S, self._drain_expired)

    def _drain_expired(self) -> None:
        if self._drained is not None:
            self.close()

    def _finish_drain(self, ok: bool) -> None:
        done, self._drained = self._drained, None
        if done is not None:
            done(self, ok)

    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def request(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[tuple[int, bytes, str | None]]:
        assert self.transport is not None
        self._waiter = loop.create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Slots:
    """FIFO connection slots. A waiter that gives up is skipped when its turn comes, in O(1):
    Python 3.11's asyncio.Semaphore removes it from its queue in O(waiters), which under
    overload (thousands waiting, thousands timing out per second) costs the generator the
    CPU it needs to read the answers that are arriving."""

    __slots__ = ("_free", "_waiters")

    def __init__(self, count: int) -> None:
        self._free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        if self._free > 0:  # free slots exist only while nobody live is waiting (release hands over)
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # handed a slot, then cancelled: pass it on
                self.release()
            raise

    def release(self) -> None:
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1

    @property
    def free(self) -> int:
        return self._free


class Http1Pool:
    """At most `limit` connections to one host; idle ones are reused most-recently-used first."""

    def __init__(self, base_url: str, limit: int = 64, verify: bool = True) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"only http:// and https:// URLs are supported, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl.create_default_context()
            if not verify:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        self._host_header = f"Host: {parts.netloc}\r\n".encode()
        self._idle: deque[_Connection] = deque()
        self._slots = _Slots(limit)
        self._all: set[_Connection] = set()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self._ssl)
        self._all.add(conn)
        return conn

    def _encode(self, method: str, path: str, body: bytes | None, headers: dict[str, str] | None) -> bytes:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        typed = False
        if headers:
            head.extend(f"{k}: {v}\r\n".encode() for k, v in headers.items())
            typed = any(k.lower() == "content-type" for k in headers)
        if body is not None:
            if not typed:
                head.append(b"Content-Type: application/json\r\n")
            head.append(b"Content-Length: %d\r\n\r\n" % len(body))
            head.append(body)
        else:
            head.append(b"\r\n")
        return b"".join(head)

    async def call(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, str | None]:
        """Send one request; return (status, body, etag).

        Never resent: a write that may have reached the server is not repeated behind the
        caller's back (idle connections the server already closed are skipped before sending).
        """
        data = self._encode(method, path, body, headers)
        loop = asyncio.get_running_loop()
        await self._slots.acquire()
        slot_handed_over = False
        try:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
                self._all.discard(candidate)
            if conn is None:
                conn = await self._connect()
            answer = conn.request(data, loop)
            try:
                result = await answer
            except asyncio.CancelledError:
                if answer.done() and not answer.cancelled():  # answered, then cancelled before resuming
                    self._reuse(conn)
                elif conn.closed:
                    self._all.discard(conn)
                else:  # the answer is on its way: keep the connection (and its slot) until it is in
                    conn.drain(self._drained, loop)
                    slot_handed_over = True
                raise
            except BaseException:
                self._all.discard(conn)
                conn.close()  # failed mid-request: the connection's state is unknown
                raise
            self._reuse(conn)
            return result
        finally:
            if not slot_handed_over:
                self._slots.release()

    def _reuse(self, conn: _Connection) -> None:
        if conn.keep_alive and not conn.closed:
            self._idle.append(conn)
        else:
            self._all.discard(conn)
            conn.close()

    def _drained(self, conn: _Connection, ok: bool) -> None:
        if ok:
            self._reuse(conn)
        else:
            self._all.discard(conn)
            conn.close()
        self._slots.release()

    async def close(self) -> None:
        for conn in list(self._all):
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)
