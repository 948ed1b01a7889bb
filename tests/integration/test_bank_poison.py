"""Records the ledger cannot hold go to the DLQ with a reason and their bytes, and the stream goes on.

One service instance is shared by the module (starting one takes seconds); every test uses ids of
its own. Poison records are sent by a producer of the test's own, as any producer of the topics
could send them; their op ids are not the driver's, so only the DLQ tells their fate.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from harness.protocol import DriverContext, Op
from targets.bank import poison
from targets.bank.apply import APPLIED, DLQ, LedgerWriter
from targets.bank.avro import Encoder
from targets.bank.driver import BankDriver
from targets.bank.registry import make_registry
from targets.bank.topics import H_DLQ_DETAIL, H_DLQ_OFFSET, H_DLQ_REASON, H_DLQ_TOPIC, SCHEMA_FILES

pytestmark = pytest.mark.asyncio(loop_scope="module")
D = Decimal
PASSWORD = "pw-never-in-argv"
KINDS = [p.kind for p in poison.records({e: 1 for e in SCHEMA_FILES}, "x")]


class Completions:
    def __init__(self) -> None:
        self.results: dict[str, str | None] = {}

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        self.results[op_id] = error

    def observe(self, metric: str, value_us: int) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        return None

    async def wait(self, op_id: str, within_s: float = 30.0) -> str | None:
        deadline = time.monotonic() + within_s
        while op_id not in self.results:
            assert time.monotonic() < deadline, f"no outcome for {op_id}"
            await asyncio.sleep(0.02)
        return self.results[op_id]


class Bank:
    def __init__(self, driver: BankDriver, done: Completions, dsn: str, kafka: str, ids: dict[str, int]) -> None:
        self.driver, self.done, self.dsn, self.kafka, self.ids = driver, done, dsn, kafka, ids
        self.producer = AIOKafkaProducer(
            bootstrap_servers=kafka, enable_idempotence=False, max_request_size=4 * 1024 * 1024, linger_ms=20
        )

    async def open(self, cid: str, solde: str) -> None:
        fields = {
            "event_id": str(uuid.uuid4()),
            "timestamp": int(time.time() * 1000),
            "compte_id": cid,
            "client_id": "K",
            "type_compte": "COURANT",
            "devise": "EUR",
            "solde_initial": D(solde),
            "metadata": None,
        }
        op = Op(f"open-{cid}", "open", {"event": "CompteOuvert", "key": cid, "fields": fields, "expect": "applied"})
        await self.driver.send(op)
        assert await self.done.wait(op.id) is None

    async def deposit(self, cid: str, montant: str, reference: str = "DEP") -> str:
        fields = {
            "event_id": str(uuid.uuid4()),
            "timestamp": int(time.time() * 1000),
            "compte_id": cid,
            "montant": D(montant),
            "devise": "EUR",
            "reference": reference,
            "canal": "CARTE",
            "metadata": None,
        }
        op = Op(f"dep-{uuid.uuid4().hex[:8]}", "deposit", {"event": "DepotEffectue", "key": cid, "fields": fields})
        op.payload["expect"] = "applied"
        await self.driver.send(op)
        return op.id

    async def solde(self, cid: str) -> Decimal | None:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchval("SELECT solde FROM bancaire.comptes WHERE id = $1", cid)
        finally:
            await conn.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def bank(
    embedded_kafka: str, embedded_postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Bank]:
    name = f"edabench_bank_test_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(embedded_postgres)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    # trust auth ignores the password: it is there to be looked for where it must not be
    dsn = embedded_postgres.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PASSWORD}@") + "/" + name
    done = Completions()
    driver = BankDriver()
    ctx = DriverContext(
        options={"instances": 1, "partitions": 2, "lag_interval_s": 0},
        completions=done,
        services={"kafka": embedded_kafka, "postgres": dsn},
        run_id=f"t-{name}",
        run_dir=str(tmp_path_factory.mktemp("bank-poison")),
    )
    bank: Bank | None = None
    try:
        await driver.start(ctx)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            ids = await Encoder(make_registry(pool)).register_all()  # the ids the service resolves
        finally:
            await pool.close()
        bank = Bank(driver, done, dsn, embedded_kafka, ids)
        await bank.producer.start()
        yield bank
    finally:
        if bank is not None:
            await bank.producer.stop()
        await driver.stop()
        conn = await asyncpg.connect(embedded_postgres)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_poison_record_goes_to_the_dlq_with_its_reason_and_bytes_and_the_next_event_applies(
    bank: Bank, kind: str
) -> None:
    tag = uuid.uuid4().hex[:8]
    p = next(x for x in poison.records(bank.ids, tag) if x.kind == kind)
    await bank.open(p.key, "5.00")  # a good account under the poison's key: same partition after it
    sent = await poison.send(bank.producer, [p], f"poison-{tag}-")
    after = await bank.deposit(p.key, "2.50")
    assert await bank.done.wait(after) is None
    assert await bank.solde(p.key) == D("7.50")
    (op_id,) = sent
    found = await poison.read_dlq(bank.kafka, {op_id})
    dlq = found[op_id][0]
    headers = dict(dlq.headers)
    assert (headers[H_DLQ_REASON].decode(), dlq.value) == (p.reason, p.value)
    assert headers[H_DLQ_TOPIC].startswith(b"bancaire.") and headers[H_DLQ_OFFSET].isdigit()
    assert H_DLQ_DETAIL in headers


async def test_a_record_the_database_refuses_is_isolated_and_the_rest_of_its_batch_applies_once(bank: Bank) -> None:
    cid = f"iso-{uuid.uuid4().hex[:8]}"
    await bank.open(cid, "0.00")
    conn = await asyncpg.connect(bank.dsn)
    try:  # a rule the validator does not know: only the database can refuse this record
        await conn.execute(
            "ALTER TABLE bancaire.transactions ADD CONSTRAINT no_refused CHECK (reference <> 'REFUSED-BY-DB')"
        )
        pool = await asyncpg.create_pool(bank.dsn, min_size=1, max_size=1)
        writer = LedgerWriter(pool, asyncio.Event())
        events: list[tuple[str, dict[str, Any]]] = [
            ("DepotEffectue", _dep(cid, f"{cid}-{i}", "1.00", "REFUSED-BY-DB" if i == 2 else "OK")) for i in range(5)
        ]
        try:
            decisions = await writer.apply(events)
            again = await writer.apply(events)  # a replay of the same batch changes nothing
        finally:
            await pool.close()
        n_tx = await conn.fetchval("SELECT count(*) FROM bancaire.transactions WHERE compte_id = $1", cid)
    finally:
        await conn.execute("ALTER TABLE bancaire.transactions DROP CONSTRAINT IF EXISTS no_refused")
        await conn.close()
    assert [d.status for d in decisions] == [APPLIED, APPLIED, DLQ, APPLIED, APPLIED]
    assert decisions[2].reason == "db:check_violation"
    assert [d.status for d in again] == ["duplicate", "duplicate", DLQ, "duplicate", "duplicate"]
    assert (await bank.solde(cid), n_tx) == (D("4.00"), 4)


def _dep(cid: str, eid: str, montant: str, reference: str) -> dict[str, Any]:
    return {"event_id": eid, "timestamp": int(time.time() * 1000), "compte_id": cid, "montant": D(montant),
            "devise": "EUR", "reference": reference, "canal": "CARTE", "metadata": None}  # fmt: skip


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/comptes/X/transactions?limit=%C2%B2",
        "/api/v1/comptes/X/transactions?limit=%E2%91%A0",
        "/api/v1/comptes/X/transactions?limit=" + "9" * 10_000,
        "/api/v1/comptes/X/transactions?limit=-1",
        "/api/v1/comptes/X/transactions?limit=%FF%FE",
        "/api/v1/comptes/%00",
        "/api/v1/comptes/%E2%91%A0",
        "/api/v1/clients/" + "k" * 1000 + "/comptes",
    ],
)
async def test_a_malformed_request_gets_a_4xx_with_a_json_body(bank: Bank, path: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(bank.driver.api_urls[0] + path) as r:
        body = await r.json(content_type=None)
    assert 400 <= r.status < 500 and body["error"]


async def test_a_post_announcing_more_body_than_it_sends_is_answered_at_once(bank: Bank) -> None:
    port = int(bank.driver.api_urls[0].rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /api/v1/comptes/X HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 30)  # generous: the point is "not never"
    finally:
        writer.close()
    assert status_line.split()[1] == b"405"


async def test_the_database_password_is_not_on_the_service_command_line(bank: Bank) -> None:
    pids = list(bank.driver.pids.values())
    cmdlines = [_cmdline(pid) for pid in pids]
    assert pids and all(b"targets.bank.service" in c and PASSWORD.encode() not in c for c in cmdlines)
    assert PASSWORD in bank.dsn  # and the service connected with it (the fixture's events applied)


def _cmdline(pid: int) -> bytes:
    """What `ps` shows of a process: its arguments."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()
