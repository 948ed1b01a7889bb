"""The lean HTTP/1.1 client: connections kept when the caller gives up, slots never stranded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from harness.transports.http1 import Http1Pool, _Connection


class SlowServer:
    """Answers `GET /<ms>` after that many milliseconds with the path as the body; counts connections."""

    def __init__(self) -> None:
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while line := await reader.readline():
                path = line.split()[1]
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                await asyncio.sleep(int(path[1:]) / 1000)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))
                await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[tuple[SlowServer, str]]:
    slow = SlowServer()
    srv = await asyncio.start_server(slow.handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield slow, f"http://127.0.0.1:{port}"
    finally:
        srv.close()
        await srv.wait_closed()


async def test_a_request_abandoned_in_flight_leaves_its_connection_reusable(server: tuple[SlowServer, str]) -> None:
    slow, url = server
    pool = Http1Pool(url, limit=1)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.call("GET", "/100"), 0.02)
        status, body, _ = await pool.call("GET", "/1")
    finally:
        await pool.close()
    assert (status, body) == (200, b"/1")
    assert slow.connections == 1


async def test_the_next_caller_waits_for_the_abandoned_answer_and_gets_its_own(
    server: tuple[SlowServer, str]
) -> None:
    slow, url = server
    pool = Http1Pool(url, limit=1)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.call("GET", "/50"), 0.01)
        answers = await asyncio.gather(pool.call("GET", "/2"), pool.call("GET", "/3"))
    finally:
        await pool.close()
    assert [(s, b) for s, b, _ in answers] == [(200, b"/2"), (200, b"/3")]
    assert slow.connections == 1


async def test_no_slot_is_lost_when_answers_race_with_timeouts(server: tuple[SlowServer, str]) -> None:
    """Answers arriving in the same loop turn as the caller's timeout must not strand a slot."""
    _, url = server
    rng = random.Random(7)
    pool = Http1Pool(url, limit=4)
    outcomes: list[str] = []

    async def one() -> None:
        try:
            await asyncio.wait_for(pool.call("GET", f"/{rng.randint(0, 5)}"), rng.uniform(0.001, 0.02))
            outcomes.append("ok")
        except TimeoutError:
            outcomes.append("timeout")

    try:
        for _ in range(10):
            await asyncio.gather(*(one() for _ in range(200)))
        await asyncio.sleep(0.1)  # longer than any answer still on its way
        status, body, _ = await asyncio.wait_for(pool.call("GET", "/0"), 1)
        free_after = pool._slots.free
    finally:
        await pool.close()
    assert len(outcomes) == 2000
    assert (status, body) == (200, b"/0")
    assert free_after == 4


class _Wire:
    """Stands in for the socket: keeps what the connection writes."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None: ...


async def test_an_answer_that_lands_between_the_cancel_and_the_drain_frees_the_connection_at_once() -> None:
    conn = _Connection()
    conn.connection_made(_Wire())  # type: ignore[arg-type]
    answer = conn.request(b"GET /1 HTTP/1.1\r\n\r\n", asyncio.get_running_loop())
    answer.cancel()  # the caller's task was cancelled; its except block has not run yet
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n/1")  # the answer lands first
    drained: list[bool] = []

    conn.drain(lambda _conn, ok: drained.append(ok), asyncio.get_running_loop())

    assert drained == [True]
