"""Driver for the echo target: HTTP requests, or Kafka requests answered on a reply topic.

Options (`[target_options]`):
  transport      "http" (default) or "kafka"
  base_ms, dist, spread_ms, stall_every_s, stall_for_s, seed   the latency model (see latency.py)
  url            an echo server already running (then none is launched)
  connections    HTTP keep-alive connections (default 64: a bounded pool keeps CPU per request flat
                 when the server falls behind; the queueing still shows, since latency counts
                 from the intended start)
  partitions     partitions of the request and reply topics (default 2); both topics are deleted
                 and recreated at the start of every run
  truth_log      true: the server logs every request's ground truth to logs/echo-truth.bin

Over HTTP the echo target is the generic `http` target pointed at its own server, plus headers
that carry the op id and intended start for the truth log. Over Kafka: requests keyed
"<run>/<op id>:<intended ns>" on echo.requests, replies with the same key on echo.replies,
produced and read with the librdkafka transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.protocol import Driver, DriverContext, Op, Result
from harness.transports.kafka import KafkaProducer, KafkaReader
from targets.echo.server import REPLIES_TOPIC, REQUESTS_TOPIC, TruthLog
from targets.http.driver import HttpDriver

READY_TIMEOUT_S = 60.0
TOPIC_TIMEOUT_S = 30.0
TOPIC_ALREADY_EXISTS = 36  # Kafka protocol error code
TRUTH_FILE = "logs/echo-truth.bin"
# Over Kafka the reply's own broker hop is latency the server cannot see: with `truth_log`, each
# generator process also logs when it read each reply (same record layout; "arrival" = "answer" =
# that instant), the very instant it hands to the harness, so the harness's books can be checked op by op.
SEEN_FILE = "logs/echo-seen-{process}.bin"


class EchoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transport: Literal["http", "kafka"] = "http"
    base_ms: float = Field(1.0, ge=0)
    dist: Literal["constant", "uniform", "exponential"] = "constant"
    spread_ms: float = Field(0.0, ge=0)
    stall_every_s: float = Field(0.0, ge=0)
    stall_for_s: float = Field(0.0, ge=0)
    seed: int = 1
    url: str | None = None
    connections: int = Field(64, ge=1)
    partitions: int = Field(2, ge=1)
    truth_log: bool = False
    linger_ms: float = Field(1.0, ge=0)
    pids: dict[str, int] = Field(default_factory=dict)  # what launch() yields


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _fresh_topics(bootstrap: str, partitions: int) -> None:
    """Delete and recreate the echo topics, so that every run starts on empty partitions.

    They are the echo target's scratch topics. Starting empty keeps runs comparable: on the embedded
    broker's in-memory store every fetch that finds data lists all the partition's stored batches
    (measured: 3.8 ms p50 on a fresh topic, 17 ms after five earlier runs of 1,000 records).
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


class EchoDriver(Driver):
    name: ClassVar[str] = "echo"
    Options: ClassVar[type[BaseModel]] = EchoOptions

    @classmethod
    def needs_for(cls, options: dict[str, Any]) -> Iterable[str]:
        return ("kafka",) if options.get("transport", "http") == "kafka" else ()

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, options: dict[str, Any], services: dict[str, str], run_dir: str
                     ) -> AsyncIterator[dict[str, Any]]:
        """Start one echo server for the whole run (all generator processes share it)."""
        o = EchoOptions.model_validate(options)
        if o.url:
            yield {}
            return
        kafka = services.get("kafka") if o.transport == "kafka" else None
        if kafka:
            await _fresh_topics(kafka, o.partitions)
        port = _free_port()
        args = [sys.executable, "-m", "targets.echo.server", "--http-port", str(port)]
        for key in ("base_ms", "dist", "spread_ms", "stall_every_s", "stall_for_s", "seed"):
            args += [f"--{key.replace('_', '-')}", str(getattr(o, key))]
        if kafka:
            args += ["--kafka", kafka]
        if o.truth_log:
            args += ["--truth-log", str(Path(run_dir) / TRUTH_FILE)]
        log = await asyncio.to_thread(open, f"{run_dir}/logs/echo.log", "ab")
        proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=log,
                                                    start_new_session=True)
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
        self._http: HttpDriver | None = None
        self._producer: KafkaProducer | None = None
        self._reader: KafkaReader | None = None
        self._seen: TruthLog | None = None
        self._ctx: DriverContext | None = None
        self._tag = b""

    async def start(self, ctx: DriverContext) -> None:
        o = EchoOptions.model_validate(ctx.options)
        self._ctx = ctx
        if o.transport == "http":
            if not o.url:
                raise ValueError("target_options.url: no echo server was launched and no url given")
            self._http = HttpDriver()
            await self._http.start(DriverContext(
                options={"url": f"{o.url.rstrip('/')}/echo", "connections": o.connections,
                         "headers": {"x-edabench-op": "{id}", "x-edabench-intended": "{intended_ns}"}},
                completions=ctx.completions, services=ctx.services, run_dir=ctx.run_dir,
                process_index=ctx.process_index, process_count=ctx.process_count, run_id=ctx.run_id,
                supervise=ctx.supervise))
            self.send_batch = None  # type: ignore[method-assign,assignment]  # HTTP goes op by op
            return
        bootstrap = ctx.services["kafka"]
        self._tag = f"{ctx.run_id}.{ctx.process_index}/".encode()
        complete = ctx.completions.complete
        self._producer = KafkaProducer(bootstrap, self._delivered, linger_ms=o.linger_ms)
        await self._producer.prepare([REQUESTS_TOPIC])
        ctx.background(self._producer.run, "echo-producer")
        if o.truth_log:
            self._seen = TruthLog(str(Path(ctx.run_dir) / SEEN_FILE.format(process=ctx.process_index)))
            ctx.background(self._seen.run, "echo-seen-log")
        self._reader = KafkaReader(bootstrap, [REPLIES_TOPIC], self._replies(complete))
        await self._reader.assign()
        ctx.background(self._reader.run, "echo-replies")

    def _delivered(self, op_id: int, error: str | None) -> None:
        if error is not None and self._ctx is not None:
            self._ctx.completions.complete(op_id, error)

    def _replies(self, complete: Any) -> Any:
        tag = self._tag
        seen = self._seen

        def on_records(records: list[Any]) -> None:
            now = time.monotonic_ns()
            for rec in records:
                key = rec.key()
                if key is not None and key.startswith(tag):
                    op_id, _, intended = key[len(tag):].partition(b":")
                    if seen is not None:
                        seen.add(int(op_id), int(intended), now, now)
                    complete(int(op_id), None, now)
        return on_records

    async def send(self, op: Op) -> Result | None:
        if self._http is not None:
            return await self._http.send(op)
        self.send_batch([op])
        return None

    def send_batch(self, ops: list[Op]) -> None:
        """Kafka only: every due request into librdkafka's queue in one pass (HTTP goes by `send`)."""
        produce = self._producer.produce  # type: ignore[union-attr]
        tag = self._tag
        for op in ops:
            produce(REQUESTS_TOPIC, b"x", tag + b"%d:%d" % (op.id, op.intended_ns), op_id=op.id)

    async def stop(self) -> None:
        if self._http is not None:
            await self._http.stop()
        if self._producer is not None:
            await self._producer.close()
        if self._reader is not None:
            await self._reader.close()
        if self._seen is not None:
            await self._seen.flush()
