"""The echo service: an HTTP endpoint and a Kafka echo, both following one LatencyModel.

Run: python -m targets.echo.server --http-port 8080 [--kafka 127.0.0.1:9092] [--truth-log FILE] ...
Prints one line "ready <http-port>" on stdout once it serves (and, with Kafka, once its
consumer has its partitions), so a launcher knows when to start the load.

With `--truth-log`, every request that carries an op id and its intended start (headers
`x-edabench-op` / `x-edabench-intended`, or the Kafka key "<op id>:<intended ns>") is logged with
its arrival and answer instants (CLOCK_MONOTONIC, system-wide on Linux): the ground truth a truth
test compares the harness's numbers with, recorded in the same run, so a loaded machine slows
the service and the truth alike and cannot fail the comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import struct
import sys
import time
from typing import Any

import uvicorn

from targets.echo.latency import LatencyModel

REQUESTS_TOPIC = "echo.requests"
REPLIES_TOPIC = "echo.replies"


TRUTH = struct.Struct("<qqqq")  # op id, intended ns, arrival ns, answer ns


class TruthLog:
    """Fixed-size binary records, buffered and written once a second off the event loop."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._buf = bytearray()
        self._task: asyncio.Task[None] | None = None

    def add(self, op_id: int, intended_ns: int, arrival_ns: int, answer_ns: int) -> None:
        if self.path is not None:
            self._buf += TRUTH.pack(op_id, intended_ns, arrival_ns, answer_ns)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self.flush()

    async def flush(self) -> None:
        if self.path is None or not self._buf:
            return
        data, self._buf = bytes(self._buf), bytearray()
        await asyncio.to_thread(_append, self.path, data)


def _append(path: str, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


def read_truth(path: str) -> list[tuple[int, int, int, int]]:
    """The records of a truth log: (op id, intended ns, arrival ns, answer ns)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return [TRUTH.unpack_from(data, i) for i in range(0, len(data) - len(data) % TRUTH.size, TRUTH.size)]


class EchoApp:
    """A bare ASGI app: no framework, so the server's own overhead stays small and steady."""

    def __init__(self, model: LatencyModel, t0: float, truth: TruthLog | None = None) -> None:
        self.model = model
        self.t0 = t0
        self.truth = truth or TruthLog(None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/echo":
            arrival = time.monotonic_ns()
            await asyncio.sleep(self.model.delay_s(arrival / 1e9 - self.t0))
            body, status = b"ok", 200
            op_id = intended = None
            for name, value in scope["headers"]:
                if name == b"x-edabench-op":
                    op_id = int(value)
                elif name == b"x-edabench-intended":
                    intended = int(value)
            if op_id is not None and intended is not None:
                self.truth.add(op_id, intended, arrival, time.monotonic_ns())
        elif path == "/health":
            body, status = b'{"status":"ok"}', 200
        else:
            body, status = b'{"error":"not found"}', 404
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def kafka_echo(bootstrap: str, model: LatencyModel, t0: float, ready: asyncio.Event,
                     stop: asyncio.Event, truth: TruthLog) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.abc import ConsumerRebalanceListener

    class Ready(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: Any) -> None:
            return None

        async def on_partitions_assigned(self, assigned: Any) -> None:
            if assigned:
                ready.set()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=0, acks=1)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="edabench-echo",
                                auto_offset_reset="latest", fetch_max_wait_ms=5, enable_auto_commit=True)
    await producer.start()
    await consumer.start()
    consumer.subscribe([REQUESTS_TOPIC], listener=Ready())
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Future[Any]] = set()

    def reply(key: bytes | None, value: bytes | None, arrival: int) -> None:
        if key is not None and b":" in key:
            op_id, _, intended = key.partition(b":")
            with contextlib.suppress(ValueError):
                truth.add(int(op_id.rsplit(b"/", 1)[-1]), int(intended), arrival, time.monotonic_ns())
        fut = asyncio.ensure_future(producer.send(REPLIES_TOPIC, value=value, key=key))
        pending.add(fut)
        fut.add_done_callback(pending.discard)

    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=50, max_records=10_000)
            arrival = time.monotonic_ns()
            now = arrival / 1e9 - t0
            wall_ms = time.time() * 1000.0
            for records in batch.values():
                for rec in records:
                    # The model's clock starts when the request was produced (its CreateTime), not when
                    # the fetch brought it here: the request hop through the broker is then inside the
                    # configured latency instead of on top of it, as it is for the HTTP endpoint.
                    age = max(0.0, (wall_ms - rec.timestamp) / 1000.0) if rec.timestamp > 0 else 0.0
                    delay = model.delay_s(now - age) - age
                    loop.call_later(max(0.0, delay), reply, rec.key, rec.value, arrival)
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--http-port", type=int, required=True)
    p.add_argument("--kafka", default=None)
    p.add_argument("--base-ms", type=float, default=1.0)
    p.add_argument("--dist", default="constant")
    p.add_argument("--spread-ms", type=float, default=0.0)
    p.add_argument("--stall-every-s", type=float, default=0.0)
    p.add_argument("--stall-for-s", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--truth-log", default=None, help="append each request's ground truth to this file")
    a = p.parse_args(argv)
    truth = TruthLog(a.truth_log)
    model = LatencyModel(a.base_ms, a.dist, a.spread_ms, a.stall_every_s, a.stall_for_s, a.seed)
    t0 = time.monotonic()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = uvicorn.Config(EchoApp(model, t0, truth), host="127.0.0.1", port=a.http_port, log_level="warning",
                            access_log=False, loop="none", http="httptools", lifespan="on")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve())
    kafka_ready = asyncio.Event()
    kafka_task = None
    if a.kafka:
        kafka_task = asyncio.create_task(kafka_echo(a.kafka, model, t0, kafka_ready, stop, truth))
    else:
        kafka_ready.set()
    while not server.started:
        await asyncio.sleep(0.01)
    await kafka_ready.wait()
    sys.stdout.write(f"ready {a.http_port}\n")
    sys.stdout.flush()
    flusher = asyncio.create_task(truth.run())
    await stop.wait()
    server.should_exit = True
    await serving
    if kafka_task is not None:
        await kafka_task
    flusher.cancel()
    await truth.flush()


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
