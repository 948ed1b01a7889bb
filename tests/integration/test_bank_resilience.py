"""The bank pipeline under concurrency, crashes, PostgreSQL restarts and poison records, checked by the
ledger against the workload's shadow ledger (an independent computation of every balance).

Every test runs in a namespace of its own (topics, consumer group, PostgreSQL schema: `topics.Names`),
read back from the driver, so tests sharing the session's broker never see each other's records.
The PostgreSQL-restart tests run a PostgreSQL of their own, which they stop and start again; every
process a test starts is stopped in `finally`, by pid. The driver's background tasks are supervised
as the harness supervises them: one that fails fails the test, naming it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaProducer

from harness.engine.supervise import Supervisor
from harness.protocol import DriverContext, Op
from infra import postgres
from infra.process import ManagedProcess
from targets.bank import poison
from targets.bank.avro import Encoder
from targets.bank.driver import BankDriver
from targets.bank.registry import make_registry
from targets.bank.topics import H_DLQ_REASON, H_OP_ID, H_ORIGIN, Names, ensure_topics
from workloads.bank.generator import BankWorkload

D = Decimal


def new_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


class Completions:
    """Records completions and feeds them to a workload, as the harness does; supervises the
    driver's background tasks as the harness does (a failed one is in `failures`)."""

    def __init__(self, workload: BankWorkload | None = None) -> None:
        self.workload = workload
        self.ops: dict[int, Op] = {}
        self.results: dict[int, str | None] = {}
        self.late = 0  # completions of unknown or already finished ops (ignored, as the harness does)
        self.supervisor = Supervisor()

    def new_op(self, kind: str, payload: Any, intended_ns: int | None = None) -> Op:
        """The next op (ids 1, 2, ...), intended now unless a schedule says when."""
        op = Op(len(self.ops) + 1, kind, payload, time.monotonic_ns() if intended_ns is None else intended_ns)
        self.ops[op.id] = op
        return op

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        op = self.ops.get(op_id)
        if op is None or op_id in self.results:
            self.late += 1
            return
        self.results[op_id] = error
        if self.workload is not None:
            self.workload.on_result(op, error)

    def complete_many(
        self, op_ids: Sequence[int], completed_ns: int | None = None, errors: Sequence[str | None] | None = None
    ) -> None:
        for i, op_id in enumerate(op_ids):
            self.complete(op_id, errors[i] if errors is not None else None, completed_ns)

    def observe(self, metric: str, value_us: int) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        return None

    def expect(self, metric: str, n: int = 1) -> None:
        return None

    async def wait_all(self, within_s: float) -> None:
        deadline = time.monotonic() + within_s
        while len(self.results) < len(self.ops):
            assert not self.supervisor.failures, self.supervisor.failures
            missing = len(self.ops) - len(self.results)
            assert time.monotonic() < deadline, f"{missing} ops without outcome after {within_s}s"
            await asyncio.sleep(0.05)
        assert not self.supervisor.failures, self.supervisor.failures


@asynccontextmanager
async def bank_driver(
    kafka: str, admin_dsn: str, done: Completions, run_dir: Path, name: str = "", **options: Any
) -> AsyncIterator[tuple[BankDriver, str]]:
    """A fresh database and a started driver (which owns the service), in a namespace of its own
    unless `namespace` is given; both gone afterwards (a namespace's topics with the service)."""
    name = name or f"edabench_bank_test_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    dsn = admin_dsn.rsplit("/", 1)[0] + "/" + name
    driver = BankDriver()
    ctx = DriverContext(
        options={"lag_interval_s": 0, "namespace": new_namespace(), **options},
        completions=done,
        services={"kafka": kafka, "postgres": dsn},
        run_id=f"t-{name}",
        run_dir=str(run_dir),  # service logs land in <run_dir>/logs
        supervise=done.supervisor.spawn,
    )
    try:
        await driver.start(ctx)
        yield driver, dsn
        assert not done.supervisor.failures, done.supervisor.failures
    finally:
        try:
            await done.supervisor.stop()
            await driver.stop()
        finally:
            conn = await asyncpg.connect(admin_dsn)
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            await conn.close()


async def send_paced(
    driver: BankDriver, done: Completions, make: Callable[[int], tuple[str, Any]], rate: float, seconds: float
) -> None:
    """Open loop at `rate` ops/s for `seconds`: every op of the schedule is sent (late if the loop was
    starved), intended at its place in the schedule."""
    start_ns = time.monotonic_ns()
    total = int(rate * seconds)
    n = 0
    while n < total:
        due = min(total, int((time.monotonic_ns() - start_ns) * rate / 1e9) + 1)
        ops = []
        while n < due:
            kind, payload = make(n)
            ops.append(done.new_op(kind, payload, start_ns + int(n * 1e9 / rate)))
            n += 1
        driver.send_batch(ops)
        await asyncio.sleep(0.005)


def mix(w: BankWorkload, seed: int) -> Callable[[int], tuple[str, Any]]:
    rng = random.Random(seed)
    kinds, weights = ["open", "deposit", "withdrawal", "transfer", "close"], [10, 35, 25, 28, 2]
    return lambda _n: w.next_op(rng.choices(kinds, weights)[0])


async def test_a_reset_run_does_not_replay_records_left_in_the_topics(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    name = f"edabench_bank_test_{uuid.uuid4().hex[:8]}"
    origin = f"t-{name}/0".encode()  # what the driver below will call itself
    names = Names(new_namespace())
    await ensure_topics(embedded_kafka, 3, names=names)  # the run's topics, as an earlier run left them
    producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka, enable_idempotence=False, linger_ms=50)
    await producer.start()
    try:  # one multi-record batch, left behind by "an earlier run", addressed to this driver
        futs = [
            await producer.send(
                names.events["CompteOuvert"],
                b"old",
                key=b"k",
                partition=0,
                headers=[(H_OP_ID, str(1000 + i).encode()), (H_ORIGIN, origin)],
            )
            for i in range(5)
        ]
        for f in futs:
            await f
    finally:
        await producer.stop()
    done = Completions()
    async with bank_driver(
        embedded_kafka, embedded_postgres, done, tmp_path, name=name, namespace=names.namespace
    ) as (driver, _dsn):
        assert driver.names == names
        op = done.new_op("corrupt", {"event": "CompteOuvert", "key": "k", "raw": b"new", "expect": "dlq"})
        await driver.send(op)
        await done.wait_all(20)
        async with aiohttp.ClientSession() as http, http.get(driver.api_urls[0] + "/metrics") as r:
            metrics = await r.text()
        dlq = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("bancaire_events_dlq_total")
        )
        assert dlq == 1  # only the new record: the five old ones were not consumed
        assert (done.results, done.late, driver.tallies()["late"]) == ({op.id: None}, 0, 0)


async def test_concurrent_transfers_on_two_instances_do_not_deadlock_and_conserve_money(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    done = Completions()
    async with bank_driver(embedded_kafka, embedded_postgres, done, tmp_path, instances=2, partitions=4) as (
        driver,
        dsn,
    ):
        ids = [f"X{i:03d}-{uuid.uuid4().hex[:6]}" for i in range(20)]
        for cid in ids:
            fields = {
                "event_id": str(uuid.uuid4()),
                "timestamp": int(time.time() * 1000),
                "compte_id": cid,
                "client_id": "K",
                "type_compte": "COURANT",
                "devise": "EUR",
                "solde_initial": D("1000.00"),
                "metadata": None,
            }
            await driver.send(
                done.new_op("open", {"event": "CompteOuvert", "key": cid, "fields": fields, "expect": "applied"})
            )
        await done.wait_all(20)
        rng = random.Random(11)

        def transfer(_n: int) -> tuple[str, Any]:
            src, dst = rng.sample(ids, 2)
            fields = {
                "event_id": str(uuid.uuid4()),
                "timestamp": int(time.time() * 1000),
                "compte_source_id": src,
                "compte_destination_id": dst,
                "montant": D(rng.randrange(100, 30000)) / 100,
                "devise": "EUR",
                "motif": "",
                "reference": "VIR",
                "statut": "INITIE",
                "metadata": None,
            }
            return "transfer", {"event": "VirementEmis", "key": src, "fields": fields, "expect": None}

        await send_paced(driver, done, transfer, rate=1000, seconds=2)
        await done.wait_all(60)
        assert set(done.results.values()) <= {None, "rejected:insufficient_funds"}
        assert list(done.results.values()).count(None) > 1000  # most transfers went through
        s = driver.names.schema
        conn = await asyncpg.connect(dsn)
        try:
            total = await conn.fetchval(f"SELECT sum(solde) FROM {s}.comptes")
            drift = await conn.fetch(
                f"SELECT c.id FROM {s}.comptes c LEFT JOIN {s}.transactions t ON t.compte_id = c.id "
                "GROUP BY c.id, c.solde HAVING c.solde <> coalesce(sum(CASE WHEN t.type IN "
                "('RETRAIT', 'VIREMENT_SORTANT') THEN -t.montant ELSE t.montant END), 0)"
            )
        finally:
            await conn.close()
        assert (total, drift) == (D("20000.00"), [])
        procs = driver._launcher.procs  # type: ignore[union-attr]
        logs = [procs.log_path(i).read_text() for i in range(2)]  # type: ignore[union-attr]
        assert not any("retrying until the database answers" in log for log in logs)  # no deadlock to retry


async def test_generated_workload_with_bad_events_reconciles(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    w = BankWorkload(
        {
            "run_tag": "ok",
            "duplicate_share": 0.05,
            "corrupt_share": 0.02,
            "overdraft_share": 0.03,
            "unknown_account_share": 0.02,
        },
        seed=1,
        process_index=0,
    )
    done = Completions(w)
    async with bank_driver(embedded_kafka, embedded_postgres, done, tmp_path) as (driver, _dsn):
        await send_paced(driver, done, mix(w, 1), rate=300, seconds=4)
        await done.wait_all(30)
        assert set(done.results.values()) == {None}
        assert {"duplicate", "corrupt", "overdraft", "unknown_account", "transfer"} <= set(w.generated)
        assert await w.verify(driver) == []


async def test_sigkill_of_the_service_mid_stream_loses_nothing(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    w = BankWorkload({"run_tag": "kill"}, seed=2, process_index=0)
    done = Completions(w)
    async with bank_driver(embedded_kafka, embedded_postgres, done, tmp_path, kill_at_s=1.5, restart_after_s=1.5) as (
        driver,
        _dsn,
    ):
        procs = driver._launcher.procs  # type: ignore[union-attr]
        assert procs is not None
        first_pid = procs.procs[0].pid  # type: ignore[union-attr]
        await send_paced(driver, done, mix(w, 2), rate=200, seconds=5)
        assert procs.alive(0) and procs.procs[0].pid != first_pid  # type: ignore[union-attr]  # killed, restarted
        await done.wait_all(60)
        assert set(done.results.values()) == {None}
        assert await w.verify(driver) == []


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


async def wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.1)


async def ledger_figures(dsn: str, schema: str) -> dict[str, int]:
    """Processed events by status, as the ledger holds them (for the closing figures)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT status, count(*) FROM {schema}.processed_events GROUP BY 1")
    finally:
        await conn.close()
    return {r[0]: r[1] for r in rows}


async def test_the_service_keeps_consuming_when_postgresql_restarts(embedded_kafka: str, tmp_path: Path) -> None:
    w = BankWorkload({"run_tag": "pgr"}, seed=5, process_index=0)
    done = Completions(w)
    async with (
        own_postgres(tmp_path / "pg") as pg,
        bank_driver(embedded_kafka, pg.dsn, done, tmp_path) as (driver, _dsn),
    ):
        procs = driver._launcher.procs  # type: ignore[union-attr]
        assert procs is not None
        pid = procs.procs[0].pid  # type: ignore[union-attr]
        sending = asyncio.create_task(send_paced(driver, done, mix(w, 5), rate=100, seconds=8))
        try:
            await asyncio.sleep(2)
            await pg.fast_stop()
            # the service notices (its next batch fails) and waits: wait for the log line, not for a time
            await wait_for(lambda: "retrying until the database answers" in procs.tail(0, 200), 60, "outage noticed")
            await pg.start_again()
            await sending
        finally:
            sending.cancel()
        await done.wait_all(120)
        assert procs.alive(0) and procs.procs[0].pid == pid  # type: ignore[union-attr]  # never restarted
        assert set(done.results.values()) == {None}
        assert await w.verify(driver) == []  # balances equal the shadow ledger: nothing lost, nothing twice


async def test_poison_a_postgresql_restart_and_a_sigkill_lose_nothing_and_apply_nothing_twice(
    embedded_kafka: str, tmp_path: Path
) -> None:
    # no deliberate overdrafts: one is sized on what the account can hold when it is generated, and
    # after an outage the backlog applies deposits sent later (another topic) before it
    w = BankWorkload({"run_tag": "chaos", "duplicate_share": 0.03}, seed=6, process_index=0)
    done = Completions(w)
    tag = uuid.uuid4().hex[:8]  # poison ids unique to this test
    async with (
        own_postgres(tmp_path / "pg") as pg,
        bank_driver(embedded_kafka, pg.dsn, done, tmp_path) as (driver, dsn),
    ):
        names = driver.names
        procs = driver._launcher.procs  # type: ignore[union-attr]
        assert procs is not None
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            ids = await Encoder(make_registry(pool), names).register_all()  # the ids the service knows
        finally:
            await pool.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=embedded_kafka, enable_idempotence=False, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        sending = asyncio.create_task(send_paced(driver, done, mix(w, 6), rate=150, seconds=14))
        try:
            poisons: dict[str, poison.Poison] = {}
            await asyncio.sleep(1)
            poisons |= await poison.send(producer, poison.records(ids, f"{tag}a"), f"poison-{tag}-a-", names)
            await asyncio.sleep(1)
            await pg.fast_stop()
            # during the outage
            poisons |= await poison.send(producer, poison.records(ids, f"{tag}b"), f"poison-{tag}-b-", names)
            await wait_for(lambda: "retrying until the database answers" in procs.tail(0, 200), 60, "outage noticed")
            await pg.start_again()
            await asyncio.sleep(2)
            first_pid = procs.procs[0].pid  # type: ignore[union-attr]
            await procs.sigkill(0)  # no commit, no group leave
            # while it is dead
            poisons |= await poison.send(producer, poison.records(ids, f"{tag}c"), f"poison-{tag}-c-", names)
            await asyncio.sleep(1)
            procs.spawn(0)
            await sending
            assert procs.alive(0) and procs.procs[0].pid != first_pid  # type: ignore[union-attr]
        finally:
            sending.cancel()
            await producer.stop()
        await done.wait_all(180)
        problems = await w.verify(driver)
        figures = await ledger_figures(dsn, names.schema)
        dlq = await poison.read_dlq(embedded_kafka, set(poisons), timeout_s=60, names=names)
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
