"""Issue 12's chaos scenario for the bank pipeline, reconciled to the last event.

A bank run at 320 events/s for 45 s on a broker and a PostgreSQL of the test's own, through the
bank driver (which owns the service), while:

- every poison kind of `targets/bank/poison.py` (valid Avro that breaks a column, or not a record at
  all) is sent four times: mid-stream, during the PostgreSQL outage, during the broker pause, and
  while an instance is dead;
- PostgreSQL is fast-stopped (SIGINT) and started again on the same port and data once the service
  noticed the outage;
- a service instance is SIGKILLed every 10 s (no commit, no group leave) and respawned by the test
  1 s later (the launcher's supervision leaves deliberate kills alone);
- the broker is SIGSTOPped for 3 s, then SIGCONTed.

Then: every op has its expected outcome, the balances equal the workload's shadow ledger (nothing
lost, nothing applied twice), the ledger's processed events are exactly the events that should have
applied or been rejected, each balance equals the sum of its transactions and there are as many
transactions as the applied events make, every poison record is in the DLQ with its reason and its
original bytes, and no instance died unbidden. The figures are printed (run with `-s`) so they can
be quoted.

Slow (about a minute a case): excluded from the default suite; `nox -s chaos` runs it.
Every process the test starts (broker, PostgreSQL, service instances) is stopped by PID in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from harness.engine.supervise import Supervisor
from harness.protocol import DriverContext, Op
from infra import kafka, postgres
from infra.process import ManagedProcess
from targets.bank import poison
from targets.bank.avro import Encoder
from targets.bank.driver import BankDriver
from targets.bank.procs import ServiceProcs
from targets.bank.registry import make_registry
from targets.bank.topics import H_DLQ_OFFSET, H_DLQ_PARTITION, H_DLQ_REASON, H_DLQ_TOPIC, Names
from workloads.bank.generator import BankWorkload

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RATE = 320  # events/s, open loop
SECONDS = 45.0
KILL_EVERY_S = 10.0
DEAD_S = 1.0  # from a SIGKILL to the respawn
PG_STOP_AT_S = 13.0
PG_DOWN_AFTER_NOTICED_S = 2.0  # the outage lasts until the service noticed it, and this much longer
BROKER_PAUSE_AT_S = 25.0
BROKER_PAUSE_S = 3.0
POISON_AT_S = 3.0
OUTAGE_NOTICED = "retrying until the database answers"


class Completions:
    """Records completions (and their response times) and feeds them to the workload, as the harness
    does; supervises the driver's background tasks as the harness does."""

    def __init__(self, workload: BankWorkload) -> None:
        self.workload = workload
        self.ops: dict[int, Op] = {}
        self.results: dict[int, str | None] = {}
        self.response_ms: list[float] = []
        self.late = 0
        self.supervisor = Supervisor()

    def new_op(self, kind: str, payload: Any, intended_ns: int) -> Op:
        op = Op(len(self.ops) + 1, kind, payload, intended_ns)
        self.ops[op.id] = op
        return op

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        op = self.ops.get(op_id)
        if op is None or op_id in self.results:
            self.late += 1
            return
        self.results[op_id] = error
        self.response_ms.append(((completed_ns or time.monotonic_ns()) - op.intended_ns) / 1e6)
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


@dataclass
class Broker:
    """The test's own in-memory broker, which it can freeze (SIGSTOP) and thaw (SIGCONT)."""

    bootstrap: str
    proc: ManagedProcess
    paused: bool = False

    def pause(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        if self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.paused = False


@contextlib.asynccontextmanager
async def own_broker(run_dir: Path) -> AsyncIterator[Broker]:
    bootstrap, proc = await kafka.start(run_dir, timeout_s=60)
    broker = Broker(bootstrap, proc)
    try:
        yield broker
    finally:
        broker.resume()  # a frozen process would sit out the SIGTERM until the SIGKILL
        await proc.stop()


@dataclass
class Postgres:
    """The test's own PostgreSQL, which it can fast-stop and start again on the same port and data."""

    dsn: str
    proc: ManagedProcess

    async def fast_stop(self) -> None:
        await self.proc.stop(keep_dirs=True)  # SIGINT: PostgreSQL's fast shutdown

    async def start_again(self) -> None:
        self.proc.spawn()
        await self.proc.wait_ready(lambda: postgres.probe(self.dsn), 60, "restart")


@contextlib.asynccontextmanager
async def own_postgres(run_dir: Path) -> AsyncIterator[Postgres]:
    dsn, proc = await postgres.start(run_dir, timeout_s=60)
    try:
        yield Postgres(dsn, proc)
    finally:
        await proc.stop()


@contextlib.asynccontextmanager
async def bank_driver(
    broker: str, dsn: str, done: Completions, run_dir: Path, **options: Any
) -> AsyncIterator[BankDriver]:
    """A started driver that owns the service (in a namespace of the run's own); stopped afterwards."""
    driver = BankDriver()
    ctx = DriverContext(
        options={"lag_interval_s": 0, **options},
        completions=done,
        services={"kafka": broker, "postgres": dsn},
        run_id="chaos",
        run_dir=str(run_dir),  # service logs land in <run_dir>/logs
        supervise=done.supervisor.spawn,
    )
    try:
        await driver.start(ctx)
        yield driver
    finally:
        try:
            await done.supervisor.stop()
        finally:
            await driver.stop()


@dataclass
class Timeline:
    """What the chaos did, and when (seconds since the load started)."""

    t0: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def note(self, what: str) -> None:
        self.events.append(f"t={self.now():5.1f}s {what}")

    async def until(self, t: float) -> None:
        await asyncio.sleep(max(0.0, t - self.now()))


async def send_paced(driver: BankDriver, done: Completions, w: BankWorkload, timeline: Timeline) -> float:
    """Open loop at RATE for SECONDS: every op of the schedule is sent, intended at its place in it
    (an op sent late, on a machine that starved the generator, keeps its intended instant, so its
    lateness counts in its response time). Returns the generator's worst lag behind the schedule, in s."""
    rng = random.Random(12)
    kinds, weights = ["open", "deposit", "withdrawal", "transfer", "close"], [10, 35, 25, 28, 2]
    start_ns = int(timeline.t0 * 1e9)
    total = int(RATE * SECONDS)
    n = 0
    worst_lag_ns = 0
    while n < total:
        elapsed_ns = time.monotonic_ns() - start_ns
        due = min(total, int(elapsed_ns * RATE / 1e9) + 1)
        if n < due:
            worst_lag_ns = max(worst_lag_ns, elapsed_ns - int(n * 1e9 / RATE))
        ops = []
        while n < due:
            kind, payload = w.next_op(rng.choices(kinds, weights)[0])
            ops.append(done.new_op(kind, payload, start_ns + int(n * 1e9 / RATE)))
            n += 1
        driver.send_batch(ops)
        await asyncio.sleep(0.005)
    return worst_lag_ns / 1e9


def occurrences(procs: ServiceProcs, needle: str) -> int:
    """How often `needle` is in the instances' logs (each log spans every life of its instance)."""
    n = 0
    for i in range(len(procs.ports)):
        with contextlib.suppress(OSError):
            n += procs.log_path(i).read_text(errors="replace").count(needle)
    return n


async def wait_for(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(0.1)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def ledger_rows(dsn: str, schema: str) -> tuple[dict[str, str], int, list[str]]:
    """(event id -> status of every processed event, transaction count, accounts whose balance is not
    the sum of their transactions)."""
    conn = await asyncpg.connect(dsn)
    try:
        statuses = {r[0]: r[1] for r in await conn.fetch(f"SELECT event_id, status FROM {schema}.processed_events")}
        n_tx = await conn.fetchval(f"SELECT count(*) FROM {schema}.transactions")
        drift = await conn.fetch(
            f"SELECT c.id FROM {schema}.comptes c LEFT JOIN {schema}.transactions t ON t.compte_id = c.id "
            "GROUP BY c.id, c.solde HAVING c.solde <> coalesce(sum(CASE WHEN t.type IN "
            "('RETRAIT', 'VIREMENT_SORTANT') THEN -t.montant ELSE t.montant END), 0)"
        )
    finally:
        await conn.close()
    return statuses, n_tx, [r[0] for r in drift]


def source_of(record: Any) -> tuple[str, int, int]:
    """Where a DLQ record came from (topic, partition, offset): what tells a redelivery from a record."""
    h = dict(record.headers)
    return h[H_DLQ_TOPIC].decode(), int(h[H_DLQ_PARTITION]), int(h[H_DLQ_OFFSET])


def transactions_of(op: Op) -> int:
    """Rows an applied event writes to the transactions table."""
    p = op.payload
    if p["event"] == "CompteOuvert":
        return 1 if p["fields"]["solde_initial"] > 0 else 0
    return {"VirementEmis": 2, "CompteFerme": 0}.get(p["event"], 1)


@pytest.mark.parametrize("instances", [1, 2], ids=["1-instance", "2-instances"])
async def test_poison_a_postgresql_restart_sigkills_every_10s_and_a_broker_pause_lose_nothing_and_apply_nothing_twice(
    tmp_path: Path, instances: int
) -> None:
    # no deliberate overdrafts: one is sized on what the account can hold when it is generated, and
    # after an outage the backlog applies deposits sent later (another topic) before it
    w = BankWorkload(
        {"run_tag": "chaos", "duplicate_share": 0.03, "corrupt_share": 0.01, "unknown_account_share": 0.01},
        seed=12,
        process_index=0,
    )
    done = Completions(w)
    poisons: dict[str, poison.Poison] = {}
    kills: list[int] = []
    respawns = 0
    async with (
        own_broker(tmp_path / "kafka") as broker,
        own_postgres(tmp_path / "pg") as pg,
        bank_driver(broker.bootstrap, pg.dsn, done, tmp_path / "run", instances=instances, partitions=6) as driver,
    ):
        names: Names = driver.names
        launcher = driver._launcher
        assert launcher is not None and launcher.procs is not None
        procs = launcher.procs
        first_pids = dict(driver.pids)
        pool = await asyncpg.create_pool(pg.dsn, min_size=1, max_size=1)
        try:
            ids = await Encoder(make_registry(pool), names).register_all()  # the ids the service knows
        finally:
            await pool.close()
        producer = AIOKafkaProducer(
            bootstrap_servers=broker.bootstrap, enable_idempotence=False, max_request_size=4 * 1024 * 1024
        )
        await producer.start()
        timeline = Timeline()

        async def send_poisons(label: str) -> None:
            sent = await poison.send(producer, poison.records(ids, f"chaos{label}"), f"poison-{label}-", names)
            poisons.update(sent)
            timeline.note(f"poison set {label}: {len(sent)} records acknowledged by the broker")

        async def killer() -> None:
            nonlocal respawns
            k = 0
            while (at := (k + 1) * KILL_EVERY_S) < SECONDS:
                await timeline.until(at)
                i = k % instances
                pid = procs.pid(i)
                await procs.sigkill(i)
                kills.append(pid or -1)
                timeline.note(f"SIGKILL {procs.name(i)} pid {pid}")
                if k == 2:
                    await send_poisons("d-while-dead")
                await asyncio.sleep(DEAD_S)
                driver.pids[procs.name(i)] = new_pid = procs.spawn(i)
                respawns += 1
                timeline.note(f"respawned {procs.name(i)} as pid {new_pid}")
                k += 1

        async def db_outage() -> None:
            await timeline.until(PG_STOP_AT_S)
            before = occurrences(procs, OUTAGE_NOTICED)
            await pg.fast_stop()
            timeline.note("PostgreSQL fast stop")
            await send_poisons("b-db-down")
            await wait_for(lambda: occurrences(procs, OUTAGE_NOTICED) > before, 60, "the outage noticed")
            timeline.note("the service noticed the outage")
            await asyncio.sleep(PG_DOWN_AFTER_NOTICED_S)
            await pg.start_again()
            timeline.note("PostgreSQL started again")

        async def broker_pause() -> None:
            await timeline.until(BROKER_PAUSE_AT_S)
            broker.pause()
            timeline.note("broker SIGSTOP")
            during = asyncio.create_task(send_poisons("c-broker-paused"))  # acknowledged once it is back
            try:
                await asyncio.sleep(BROKER_PAUSE_S)
            finally:
                broker.resume()
            timeline.note("broker SIGCONT")
            await during

        async def mid_stream() -> None:
            await timeline.until(POISON_AT_S)
            await send_poisons("a-mid-stream")

        chaos: list[asyncio.Task[None]] = []
        try:
            chaos = [
                asyncio.create_task(c(), name=c.__name__) for c in (killer, db_outage, broker_pause, mid_stream)
            ]
            lag_s = await send_paced(driver, done, w, timeline)
            timeline.note(f"load over: {len(done.ops)} ops sent, the generator at most {lag_s * 1000:.0f} ms late")
            await asyncio.gather(*chaos)
        finally:
            for task in chaos:
                task.cancel()
            await asyncio.gather(*chaos, return_exceptions=True)
            broker.resume()
            await producer.stop()
        assert all(procs.alive(i) for i in range(instances))
        drain_start = time.monotonic()
        await done.wait_all(240)
        timeline.note(f"every outcome in ({time.monotonic() - drain_start:.1f}s of drain)")
        problems = await w.verify(driver)
        statuses, n_tx, drift = await ledger_rows(pg.dsn, names.schema)
        dlq = await poison.read_dlq(broker.bootstrap, set(poisons), timeout_s=60, names=names)
        books = driver.tallies()
        pids = dict(driver.pids)
    service_problems = list(launcher.problems)  # after the stop: also an instance that ignored SIGTERM

    ops = list(done.ops.values())
    should_apply = {op.payload["fields"]["event_id"]: op for op in ops if op.payload["expect"] == "applied"}
    should_reject = {op.payload["fields"]["event_id"] for op in ops if op.payload["expect"] == "rejected"}
    applied = {e for e, s in statuses.items() if s == "applied"}
    rejected = {e for e, s in statuses.items() if s == "rejected"}
    lost = set(should_apply) - applied
    expected_tx = sum(transactions_of(op) for op in should_apply.values())
    reasons = {op: {dict(r.headers)[H_DLQ_REASON].decode() for r in recs} for op, recs in dlq.items()}
    bytes_kept = all(r.value == poisons[op].value for op, recs in dlq.items() for r in recs)
    deliveries = Counter(len(recs) for recs in dlq.values())
    sources = {op: {source_of(r) for r in recs} for op, recs in dlq.items()}  # a redelivery names the same
    deliberate_dups = w.generated.get("duplicate", 0)
    print(
        f"\nbank chaos, {instances} instance(s), {RATE} events/s for {SECONDS:.0f}s:\n"
        + "\n".join(f"  {e}" for e in timeline.events)
        + f"\n  ops sent {len(ops)} ({len(ops) / SECONDS:.0f}/s), by kind {dict(sorted(w.generated.items()))}"
        f"\n  outcomes at the harness {dict(Counter(done.results.values()))}; driver books {books}"
        f"\n  ledger: {len(applied)} applied (should {len(should_apply)}, lost {len(lost)}), "
        f"{len(rejected)} rejected (should {len(should_reject)}), {len(statuses)} processed events, "
        f"{n_tx} transactions (should {expected_tx}), {len(drift)} balances off their transactions"
        f"\n  duplicates: {deliberate_dups} sent on purpose, {books['statuses'].get('duplicate', 0) - deliberate_dups} "
        f"replays answered as duplicates, {books['late']} replayed outcomes after the first"
        f"\n  poison: {len(poisons)} sent, {len(dlq)} in the DLQ (deliveries per record {dict(deliveries)}), "
        f"reasons {dict(Counter(p.reason for p in poisons.values()))}, all bytes kept {bytes_kept}"
        f"\n  kills {len(kills)}, respawns by the test {respawns}, unbidden deaths/restarts {service_problems}; "
        f"pids {first_pids} -> {pids}"
        f"\n  response time ms: p50 {percentile(done.response_ms, 0.5):.0f}, "
        f"p99 {percentile(done.response_ms, 0.99):.0f}, max {max(done.response_ms, default=0):.0f}"
        f"\n  shadow-ledger problems {problems}"
    )
    assert len(ops) == int(RATE * SECONDS) and len(kills) == respawns == math.ceil(SECONDS / KILL_EVERY_S) - 1
    assert problems == []  # balances equal the shadow ledger, every op heard, nothing lost
    assert set(done.results.values()) == {None}  # every op had the outcome it expected
    assert (lost, applied, rejected) == (set(), set(should_apply), should_reject)  # exactly these, once each
    assert (n_tx, drift) == (expected_tx, [])  # no effect written twice
    assert reasons == {op: {p.reason} for op, p in poisons.items()} and bytes_kept  # every poison, its reason
    assert all(len(src) == 1 and next(iter(src))[0] in names.inputs for src in sources.values())
    assert service_problems == []  # no instance died unbidden
