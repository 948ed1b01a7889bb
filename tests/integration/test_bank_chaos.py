"""The bank service under chaos: PostgreSQL restarts, a SIGKILLed consumer, poison records mid-stream.

Each test runs a PostgreSQL of its own (it is stopped and started again), the session's broker, and
the service through the driver, with the workload's shadow ledger as the independent computation.
Every process a test starts is stopped in `finally`, by pid.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from harness.protocol import DriverContext, Op
from infra import postgres
from infra.process import ManagedProcess
from targets.bank import poison
from targets.bank.avro import Encoder
from targets.bank.driver import BankDriver
from targets.bank.registry import make_registry
from targets.bank.topics import H_DLQ_REASON
from workloads.bank.generator import BankWorkload


class Completions:
    """Records completions and feeds them to the workload, as the harness does."""

    def __init__(self, workload: BankWorkload) -> None:
        self.workload = workload
        self.ops: dict[str, Op] = {}
        self.results: dict[str, str | None] = {}

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        self.results[op_id] = error
        if (op := self.ops.get(op_id)) is not None:
            self.workload.on_result(op, error)

    def observe(self, metric: str, value_us: int) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        return None

    async def wait_all(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while len(self.results) < len(self.ops):
            missing = len(self.ops) - len(self.results)
            assert time.monotonic() < deadline, f"{missing} ops without outcome after {within_s}s"
            await asyncio.sleep(0.05)


class Postgres:
    """A PostgreSQL of the test's own that it can fast-stop and start again on the same port and data."""

    def __init__(self, dsn: str, proc: ManagedProcess) -> None:
        self.dsn, self.proc = dsn, proc

    async def fast_stop(self) -> None:
        await self.proc.stop(keep_dirs=True)  # SIGINT: PostgreSQL's fast shutdown

    async def start_again(self) -> None:
        self.proc.spawn()
        await self.proc.wait_ready(lambda: postgres.probe(self.dsn), 60, "restart")


@asynccontextmanager
async def own_postgres(run_dir: Path) -> AsyncIterator[Postgres]:
    dsn, proc = await postgres.start(run_dir, timeout_s=60)
    try:
        yield Postgres(dsn, proc)
    finally:
        await proc.stop()


@asynccontextmanager
async def service(kafka: str, dsn: str, done: Completions, run_dir: Path) -> AsyncIterator[BankDriver]:
    driver = BankDriver()
    ctx = DriverContext(
        options={"lag_interval_s": 0, "partitions": 3},
        completions=done,
        services={"kafka": kafka, "postgres": dsn},
        run_id=f"chaos-{run_dir.name}-{time.time_ns()}",
        run_dir=str(run_dir),
    )
    try:
        await driver.start(ctx)
        yield driver
    finally:
        await driver.stop()


async def send_paced(
    driver: BankDriver, done: Completions, make: Callable[[], tuple[str, Any]], rate: float, seconds: float
) -> None:
    """Open loop at `rate` ops/s for `seconds`, whatever the service does meanwhile."""
    start = time.monotonic()
    n = 0
    while (elapsed := time.monotonic() - start) < seconds:
        while n < int(elapsed * rate) + 1:
            kind, payload = make()
            op = Op(f"op{n}", kind, payload)
            done.ops[op.id] = op
            await driver.send(op)
            n += 1
        await asyncio.sleep(0.005)


def mix(w: BankWorkload, seed: int) -> Callable[[], tuple[str, Any]]:
    rng = random.Random(seed)
    kinds, weights = ["open", "deposit", "withdrawal", "transfer", "close"], [10, 35, 25, 28, 2]
    return lambda: w.next_op(rng.choices(kinds, weights)[0])


async def wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.1)


async def ledger_figures(dsn: str) -> dict[str, int]:
    """Processed events by status, as the ledger holds them (for the closing figures)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT status, count(*) FROM bancaire.processed_events GROUP BY 1")
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


async def test_the_service_keeps_consuming_when_postgresql_restarts(embedded_kafka: str, tmp_path: Path) -> None:
    w = BankWorkload({"run_tag": "pgr"}, seed=5, process_index=0)
    done = Completions(w)
    async with own_postgres(tmp_path / "pg") as pg, service(embedded_kafka, pg.dsn, done, tmp_path) as driver:
        procs = driver._launcher.procs  # type: ignore[union-attr]
        assert procs is not None
        pid = procs.procs[0].pid  # type: ignore[union-attr]
        sending = asyncio.create_task(send_paced(driver, done, mix(w, 5), rate=100, seconds=8))
        await asyncio.sleep(2)
        await pg.fast_stop()
        # the service notices (its next batch fails) and waits: wait for the log line, not for a time
        await wait_for(lambda: "retrying until the database answers" in procs.tail(0, 200), 60, "an outage noticed")
        await pg.start_again()
        await sending
        await done.wait_all(120)
        assert procs.alive(0) and procs.procs[0].pid == pid  # the same process, never restarted
        assert set(done.results.values()) == {None}
        assert await w.verify(driver) == []  # balances equal the shadow ledger: nothing lost, nothing twice


async def test_poison_a_postgresql_restart_and_a_sigkill_lose_nothing_and_apply_nothing_twice(
    embedded_kafka: str, tmp_path: Path
) -> None:
    w = BankWorkload({"run_tag": "chaos", "duplicate_share": 0.03, "overdraft_share": 0.02}, seed=6, process_index=0)
    done = Completions(w)
    async with own_postgres(tmp_path / "pg") as pg, service(embedded_kafka, pg.dsn, done, tmp_path) as driver:
        procs = driver._launcher.procs  # type: ignore[union-attr]
        assert procs is not None
        pool = await asyncpg.create_pool(pg.dsn, min_size=1, max_size=1)
        try:
            ids = await Encoder(make_registry(pool)).register_all()
        finally:
            await pool.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=embedded_kafka, enable_idempotence=False, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        try:
            sending = asyncio.create_task(send_paced(driver, done, mix(w, 6), rate=150, seconds=14))
            poisons: dict[str, poison.Poison] = {}
            await asyncio.sleep(1)
            poisons |= await poison.send(producer, poison.records(ids, "c1"), "poison-a-")
            await asyncio.sleep(1)
            await pg.fast_stop()
            poisons |= await poison.send(producer, poison.records(ids, "c2"), "poison-b-")  # during the outage
            await wait_for(lambda: "retrying until the database answers" in procs.tail(0, 200), 60, "outage noticed")
            await pg.start_again()
            await asyncio.sleep(2)
            first_pid = procs.procs[0].pid  # type: ignore[union-attr]
            procs.kill(0)  # SIGKILL: no commit, no group leave
            poisons |= await poison.send(producer, poison.records(ids, "c3"), "poison-c-")  # while it is dead
            await asyncio.sleep(1)
            procs.spawn(0)
            await sending
            assert procs.alive(0) and procs.procs[0].pid != first_pid  # type: ignore[union-attr]
        finally:
            await producer.stop()
        await done.wait_all(180)
        problems = await w.verify(driver)
        figures = await ledger_figures(pg.dsn)
        dlq = await poison.read_dlq(embedded_kafka, set(poisons), timeout_s=60)
    reasons = {op: {dict(r.headers)[H_DLQ_REASON].decode() for r in recs} for op, recs in dlq.items()}
    bytes_kept = all(r.value == poisons[op].value for op, recs in dlq.items() for r in recs)
    deliveries = Counter(len(recs) for recs in dlq.values())
    print(
        f"\nchaos: {len(done.ops)} ops sent, outcomes {Counter(done.results.values())}, ledger {figures}, "
        f"driver books {driver.tallies()}, "
        f"workload kinds {w.generated}, poison {len(poisons)} sent, {len(dlq)} in the DLQ "
        f"(deliveries per record: {dict(deliveries)}), reasons {Counter(p.reason for p in poisons.values())}"
    )
    assert problems == []  # balances equal the shadow ledger (nothing lost or applied twice), books balance
    assert set(done.results.values()) == {None}
    assert reasons == {op: {p.reason} for op, p in poisons.items()}
    assert bytes_kept
