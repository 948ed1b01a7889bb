"""Bank runs sharing one broker and one PostgreSQL database: each run's topics, consumer group and
schema are its own, its outcome records spread over its instance's partitions, a namespaced run
cleans its topics up, and an instance that dies is restarted and named in the problems.

Driven through the launcher, as the harness's launch hook does, with a producer and an outcome
reader of the test's own (no driver). Every process a test starts is stopped by PID in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from targets.bank.avro import Encoder
from targets.bank.db import create_schema
from targets.bank.launcher import Launcher
from targets.bank.registry import make_registry
from targets.bank.topics import H_OP_ID, H_ORIGIN, Names, ensure_topics

D = Decimal


@contextlib.asynccontextmanager
async def database(admin_dsn: str) -> AsyncIterator[str]:
    """A fresh database for the test (both runs of a test share it), dropped afterwards."""
    name = f"edabench_bank_iso_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


class Run:
    """One launched bank run and a client of it: sends events to its topics, reads its outcomes."""

    def __init__(self, launcher: Launcher, info: dict[str, Any], kafka: str, dsn: str) -> None:
        self.launcher, self.info, self.kafka, self.dsn = launcher, info, kafka, dsn
        self.names = Names(info["namespace"])
        self.origin = f"test-{self.names.namespace}/0".encode()
        self.producer = AIOKafkaProducer(bootstrap_servers=kafka, enable_idempotence=False)
        self.encoder: Encoder | None = None

    async def open(self) -> None:
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        try:
            self.encoder = Encoder(make_registry(pool), self.names)
            await self.encoder.register_all()
        finally:
            await pool.close()
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    async def send(self, op_id: str, event: str, key: str, fields: dict[str, Any] | bytes) -> None:
        """An event (`fields` encoded, or bytes sent as they are) with the test's op id and origin."""
        assert self.encoder is not None
        value = fields if isinstance(fields, bytes) else self.encoder.encode(event, fields)
        headers = [(H_OP_ID, op_id.encode()), (H_ORIGIN, self.origin)]
        await (await self.producer.send(self.names.events[event], value, key=key.encode(), headers=headers))

    async def outcomes(self, op_ids: set[str], within_s: float = 30) -> tuple[dict[str, dict[str, Any]], set[int]]:
        """Every outcome in this run's outcome topic, from its start, until `op_ids` are all seen:
        (op id -> outcome, the partitions outcome records were found on)."""
        c = AIOKafkaConsumer(bootstrap_servers=self.kafka, group_id=None, fetch_max_wait_ms=50)
        await c.start()
        found: dict[str, dict[str, Any]] = {}
        parts: set[int] = set()
        try:
            await c.topics()
            topic = self.names.outcomes
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            c.assign(tps)
            await c.seek_to_beginning(*tps)
            deadline = time.monotonic() + within_s
            while not op_ids <= set(found):
                assert time.monotonic() < deadline, f"no outcome for {op_ids - set(found)} in {within_s}s"
                for tp, recs in (await c.getmany(timeout_ms=200)).items():
                    for r in recs:
                        parts.add(tp.partition)
                        found.update({o["op_id"]: o for o in orjson.loads(r.value)})
            return found, parts
        finally:
            await c.stop()

    async def ledger(self, sql: str, *args: Any) -> Any:
        """`sql` with `{s}` for this run's schema, on this run's database."""
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval(sql.format(s=self.names.schema), *args)
        finally:
            await conn.close()

    async def consumed(self) -> float:
        """Records the run's instance 0 consumed, by its /metrics."""
        return await self.metric("bancaire_events_consumed_total")

    async def metric(self, name: str) -> float:
        """The sum of a counter's series on the run's instance 0."""
        port = self.info["api_ports"][0]
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as r:
            text = await r.text()
        return sum(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(name))


@contextlib.asynccontextmanager
async def launched(kafka: str, dsn: str, run_dir: Path, **options: Any) -> AsyncIterator[Run]:
    launcher = Launcher(options, {"kafka": kafka, "postgres": dsn}, str(run_dir))
    try:
        run = Run(launcher, await launcher.start(), kafka, dsn)
        await run.open()
        try:
            yield run
        finally:
            await run.close()
    finally:
        await launcher.stop()


def opening(event_id: str, compte_id: str, solde: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": int(time.time() * 1000),
        "compte_id": compte_id,
        "client_id": "K",
        "type_compte": "COURANT",
        "devise": "EUR",
        "solde_initial": D(solde),
        "metadata": None,
    }


def deposit(event_id: str, compte_id: str, montant: str) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "timestamp": int(time.time() * 1000),
        "compte_id": compte_id,
        "montant": D(montant),
        "devise": "EUR",
        "reference": "REF",
        "canal": "CARTE",
        "metadata": None,
    }


@pytest.mark.parametrize("postgres", ["embedded_postgres", "external_postgres"])
async def test_two_runs_on_one_broker_and_one_database_see_only_their_own_events(
    embedded_kafka: str, postgres: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    async with database(request.getfixturevalue(postgres)) as dsn, contextlib.AsyncExitStack() as stack:
        # started at the same moment: their DDL on the one database must not collide either
        a, b = await asyncio.gather(
            stack.enter_async_context(launched(embedded_kafka, dsn, tmp_path / "a" / "run")),
            stack.enter_async_context(launched(embedded_kafka, dsn, tmp_path / "b" / "run")),
        )
        assert a.names.namespace != b.names.namespace and a.info["group"] != b.info["group"]
        # the same account and the same event id in both runs: each ledger applies its own
        await a.send("a1", "CompteOuvert", "C1", opening("E1", "C1", "100.00"))
        await b.send("b1", "CompteOuvert", "C1", opening("E1", "C1", "200.00"))
        await b.outcomes({"b1"})  # opening and deposit travel on different topics: no order between them
        await b.send("b2", "DepotEffectue", "C1", deposit("E2", "C1", "5.00"))
        out_a, _ = await a.outcomes({"a1"})
        out_b, _ = await b.outcomes({"b1", "b2"})
        assert set(out_a) == {"a1"} and set(out_b) == {"b1", "b2"}  # no outcome of the other run
        assert {o["status"] for o in (*out_a.values(), *out_b.values())} == {"applied"}  # E1 twice, no duplicate
        assert await a.ledger("SELECT solde FROM {s}.comptes WHERE id = 'C1'") == D("100.00")
        assert await b.ledger("SELECT solde FROM {s}.comptes WHERE id = 'C1'") == D("205.00")
        assert (await a.ledger("SELECT count(*) FROM {s}.processed_events"), await a.consumed()) == (1, 1)
        assert (await b.ledger("SELECT count(*) FROM {s}.processed_events"), await b.consumed()) == (2, 2)


async def test_a_reset_run_does_not_replay_what_an_earlier_run_of_its_namespace_left_in_the_topics(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    names = Names(f"replay-{uuid.uuid4().hex[:8]}")
    await ensure_topics(embedded_kafka, 3, names=names)
    producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka, enable_idempotence=False, linger_ms=50)
    await producer.start()
    try:  # one multi-record batch (Tansu under-reports its end offset), left behind by "an earlier run"
        topic = names.events["CompteOuvert"]
        futs = [
            await producer.send(topic, b"old", key=b"k", partition=0, headers=[(H_OP_ID, b"old")]) for _ in range(5)
        ]
        for f in futs:
            await f
    finally:
        await producer.stop()
    async with database(embedded_postgres) as dsn, launched(
        embedded_kafka, dsn, tmp_path / "run", namespace=names.namespace
    ) as run:
        await run.send("new", "CompteOuvert", "k", b"new")  # not a record either: the DLQ
        out, _ = await run.outcomes({"new"})
        assert out["new"]["status"] == "dlq"
        assert await run.metric("bancaire_events_dlq_total") == 1  # the five old ones were not consumed


async def test_a_namespaced_run_deletes_its_topics_and_keeps_its_schema_at_the_end(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    async with database(embedded_postgres) as dsn:
        async with launched(embedded_kafka, dsn, tmp_path / "run") as run:
            await run.send("o1", "CompteOuvert", "C9", opening("E9", "C9", "1.00"))
            await run.outcomes({"o1"})
            assert set(run.names.all) <= await _topics(embedded_kafka)
        assert not set(run.names.all) & await _topics(embedded_kafka)
        assert await run.ledger("SELECT count(*) FROM {s}.comptes") == 1  # kept for a post-mortem


async def test_keep_topics_keeps_them_and_keep_schema_false_drops_the_schema(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    async with database(embedded_postgres) as dsn:
        async with launched(embedded_kafka, dsn, tmp_path / "run", keep_topics=True, keep_schema=False) as run:
            pass
        try:
            assert set(run.names.all) <= await _topics(embedded_kafka)
            assert await run.ledger("SELECT to_regnamespace('{s}')") is None
        finally:
            await _delete_topics(embedded_kafka, list(run.names.all))


async def test_an_instance_spreads_its_outcome_records_over_its_outcome_partitions(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    async with database(embedded_postgres) as dsn, launched(
        embedded_kafka, dsn, tmp_path / "run", outcome_partitions=3
    ) as run:
        for i in range(3):  # one at a time: one consumed batch, one outcome record each
            await run.send(f"o{i}", "CompteOuvert", f"C{i}", opening(f"E{i}", f"C{i}", "1.00"))
            await run.outcomes({f"o{i}"})
        _, parts = await run.outcomes({"o0", "o1", "o2"})
        assert parts == {0, 1, 2}


async def test_an_instance_that_dies_is_restarted_and_named_in_the_problems(
    embedded_kafka: str, embedded_postgres: str, tmp_path: Path
) -> None:
    async with database(embedded_postgres) as dsn, launched(embedded_kafka, dsn, tmp_path / "run") as run:
        pids, problems = run.info["pids"], run.info["problems"]
        first = pids["bancaire-0"]
        assert os.getsid(first) == first  # a session of its own: a terminal's Ctrl-C does not reach it
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not problems:
            assert time.monotonic() < deadline, "the death was not reported"
            await asyncio.sleep(0.1)
        assert len(problems) == 1
        assert problems[0].startswith(f"bancaire-0 (pid {first}) was killed by SIGKILL at t=")
        assert problems[0].endswith(f"; restarted as pid {pids['bancaire-0']} (1 of 5)")
        assert pids["bancaire-0"] != first  # the dict handed out is kept current
        # the restarted instance rejoins the group and applies what comes next
        await run.send("after", "CompteOuvert", "C1", opening("E1", "C1", "3.00"))
        out, _ = await run.outcomes({"after"}, within_s=60)
        assert out["after"]["status"] == "applied"


async def test_a_reset_of_the_seeds_schema_keeps_the_shared_registry(embedded_postgres: str) -> None:
    async with database(embedded_postgres) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await create_schema(conn)
            await conn.execute(
                "INSERT INTO bancaire.schema_registry (subject, fingerprint, schema) VALUES ('x-value', 'f', '{}')"
            )
            await conn.execute("INSERT INTO bancaire.processed_events (event_id, status) VALUES ('e', 'applied')")
            await create_schema(conn, reset=True)
            kept = await conn.fetchval("SELECT count(*) FROM bancaire.schema_registry")
            ledger = await conn.fetchval("SELECT count(*) FROM bancaire.processed_events")
        finally:
            await conn.close()
    assert (kept, ledger) == (1, 0)


async def _topics(kafka: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _delete_topics(kafka: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()
