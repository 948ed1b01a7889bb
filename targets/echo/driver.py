"""Driver for the echo target: HTTP requests, or Kafka requests answered on a reply topic.

Options (`[target_options]` in a workload spec):
  transport      "http" (default) or "kafka"
  base_ms, dist, spread_ms, stall_every_s, stall_for_s, seed   the latency model (see latency.py)
  url            an echo server already running (then none is launched)
  connections    HTTP connection pool size (default 64: a bounded pool keeps CPU per request flat when
                 the server falls behind; the queueing still shows, since latency counts from the
                 intended start)
  client         "http1" (default: the lean keep-alive client of targets/http1.py) or "aiohttp"
  partitions     partitions of the request and reply topics (default 2); both topics are deleted and
                 recreated at the start of every run
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from typing import Any, ClassVar

import aiohttp

from harness.protocol import OK, DriverContext, Op, Result
from targets.echo.server import REPLIES_TOPIC, REQUESTS_TOPIC
from targets.http1 import Http1Pool
from targets.kafka_pump import ProducerPump

READY_TIMEOUT_S = 60.0
TOPIC_TIMEOUT_S = 30.0
TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _fresh_topics(bootstrap: str, partitions: int) -> None:
    """Delete and recreate the echo topics, so that every run starts on empty partitions.

    They are the echo target's scratch topics. Starting empty keeps runs comparable: on the embedded
    broker's in-memory store a fetch gets slower as the partition's stored batches grow, so a topic
    that kept earlier runs' records makes each hop slower (measured: 3.8 ms p50 on a fresh topic, 17 ms after
    five earlier runs of 1,000 records).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topics = [REQUESTS_TOPIC, REPLIES_TOPIC]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics)  # per-topic errors (e.g. unknown topic) come back as codes
        deadline = asyncio.get_running_loop().time() + TOPIC_TIMEOUT_S
        while True:  # a real Kafka deletes asynchronously: retry until the names are free
            response = await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
            codes = {err[0]: err[1] for err in response.topic_errors}
            failed = {t: c for t, c in codes.items() if c not in (0, TOPIC_ALREADY_EXISTS)}
            if failed:
                raise RuntimeError(f"could not create the echo topics on {bootstrap}: error codes {failed}")
            pending = [t for t, c in codes.items() if c == TOPIC_ALREADY_EXISTS]
            if not pending:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"echo topics {pending} still exist {TOPIC_TIMEOUT_S:.0f} s after their deletion")
            topics = pending
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


class EchoDriver:
    name: ClassVar[str] = "echo"
    needs: ClassVar[tuple[str, ...]] = ()

    @staticmethod
    def needs_for(options: dict[str, Any]) -> Iterable[str]:
        return ("kafka",) if options.get("transport", "http") == "kafka" else ()

    @staticmethod
    @contextlib.asynccontextmanager
    async def launch(options: dict[str, Any], services: dict[str, str], run_dir: str
                     ) -> AsyncIterator[dict[str, Any]]:
        """Start one echo server for the whole run (all generator processes share it)."""
        if options.get("url"):
            yield {}
            return
        kafka = services.get("kafka") if options.get("transport", "http") == "kafka" else None
        if kafka:
            await _fresh_topics(kafka, int(options.get("partitions", 2)))
        port = _free_port()
        args = [sys.executable, "-m", "targets.echo.server", "--http-port", str(port)]
        for key in ("base_ms", "dist", "spread_ms", "stall_every_s", "stall_for_s", "seed"):
            if key in options:
                args += [f"--{key.replace('_', '-')}", str(options[key])]
        if kafka:
            args += ["--kafka", kafka]
        log = await asyncio.to_thread(open, f"{run_dir}/logs/echo.log", "ab")
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=log)
        try:
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), READY_TIMEOUT_S)
            except TimeoutError:
                line = b""
            if not line.startswith(b"ready"):
                raise RuntimeError(f"echo server did not start; see {run_dir}/logs/echo.log")
            yield {"url": f"http://127.0.0.1:{port}", "pids": {"echo": proc.pid}}
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log.close()

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._pool: Http1Pool | None = None
        self._producer: Any = None
        self._consumer: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._url = ""
        self._kafka = False
        self._pump: ProducerPump | None = None
        self._ctx: DriverContext | None = None

    async def start(self, ctx: DriverContext) -> None:
        opts = ctx.options
        self._kafka = opts.get("transport", "http") == "kafka"
        if not self._kafka:
            self._url = f"{opts['url'].rstrip('/')}/echo"
            connections = int(opts.get("connections", 64))
            client = opts.get("client", "http1")
            if client == "http1":
                self._pool = Http1Pool(opts["url"], connections)
            elif client == "aiohttp":
                connector = aiohttp.TCPConnector(limit=connections, force_close=False)
                timeout = aiohttp.ClientTimeout(total=None)
                self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
            else:
                raise ValueError(f"target_options.client: unknown client {client!r}; use 'http1' or 'aiohttp'")
            return
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        bootstrap = ctx.services["kafka"]
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False,
                                          linger_ms=0, acks=1)
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                          fetch_max_wait_ms=5, auto_offset_reset="latest")
        await self._producer.start()
        self._pump = ProducerPump(self._producer, self._failed)
        self._pump.start()
        await self._consumer.start()
        parts = self._consumer.partitions_for_topic(REPLIES_TOPIC)
        if not parts:
            await self._consumer._client.force_metadata_update()
            parts = self._consumer.partitions_for_topic(REPLIES_TOPIC) or {0}
        tps = [TopicPartition(REPLIES_TOPIC, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, not at the first fetch
            await self._consumer.position(tp)
        self._reader = asyncio.create_task(self._read_replies(ctx))
        self._ctx = ctx
        self.send_nowait = self._send_kafka  # type: ignore[method-assign]

    def _failed(self, op_id: str, exc: BaseException) -> None:
        assert self._ctx is not None
        self._ctx.completions.complete(op_id, f"produce_{type(exc).__name__}")

    def _send_kafka(self, op: Op) -> None:
        self._pump.submit(op.id, REQUESTS_TOPIC, b"x", op.id.encode())  # type: ignore[union-attr]

    async def _read_replies(self, ctx: DriverContext) -> None:
        prefix = ctx.op_id_prefix.encode()
        complete = ctx.completions.complete
        while True:
            batch = await self._consumer.getmany(timeout_ms=50, max_records=10_000)
            for records in batch.values():
                for rec in records:
                    key = rec.key
                    if key is not None and key.startswith(prefix):
                        complete(key.decode())

    async def send(self, op: Op) -> Result | None:
        if self._kafka:
            self._send_kafka(op)
            return None
        if self._pool is not None:
            status, _, _ = await self._pool.call("GET", "/echo")
            return OK if status == 200 else Result(error=f"http_{status}")
        assert self._session is not None
        async with self._session.get(self._url) as resp:
            await resp.read()
            return OK if resp.status == 200 else Result(error=f"http_{resp.status}")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pump is not None:
            await self._pump.stop()
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._pool is not None:
            await self._pool.close()
        if self._session is not None:
            await self._session.close()
