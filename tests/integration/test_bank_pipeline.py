"""The bank pipeline end to end on the embedded broker and PostgreSQL, one behaviour per test.

One service instance is shared by the module (starting one takes seconds); every test uses its
own account ids, so the tests do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import dataclasses
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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from harness.protocol import DriverContext, Op
from targets.bank import poison
from targets.bank.apply import APPLIED, DUPLICATE, LedgerWriter
from targets.bank.apply import DLQ as DLQ_STATUS
from targets.bank.avro import Encoder
from targets.bank.driver import BankDriver
from targets.bank.registry import make_registry
from targets.bank.topics import DLQ, H_DLQ_DETAIL, H_DLQ_OFFSET, H_DLQ_REASON, H_DLQ_TOPIC, H_OP_ID, SCHEMA_FILES

pytestmark = pytest.mark.asyncio(loop_scope="module")
D = Decimal
#: in the fixture's DSN (trust auth ignores it), to be looked for where it must not be
PASSWORD = "pw-never-in-argv"
POISON_KINDS = [p.kind for p in poison.records({e: 1 for e in SCHEMA_FILES}, "x")]


class Completions:
    """Records what the driver reports."""

    def __init__(self) -> None:
        self.results: dict[int, str | None] = {}
        self.gauges: list[tuple[str, float]] = []

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        self.results[op_id] = error

    def observe(self, metric: str, value_us: int) -> None:
        return None

    def gauge(self, name: str, value: float) -> None:
        self.gauges.append((name, value))

    async def wait(self, *op_ids: int, within_s: float = 20.0) -> list[str | None]:
        deadline = time.monotonic() + within_s
        while not all(i in self.results for i in op_ids):
            assert time.monotonic() < deadline, f"no outcome for {[i for i in op_ids if i not in self.results]}"
            await asyncio.sleep(0.02)
        return [self.results[i] for i in op_ids]


class Bank:
    def __init__(self, driver: BankDriver, done: Completions, dsn: str, kafka: str) -> None:
        self.driver, self.done, self.dsn, self.kafka = driver, done, dsn, kafka
        self.n = 0
        self.schema_ids: dict[str, int] = {}
        # a producer of the test's own, as any producer of the topics: sends what the driver cannot
        self.producer = AIOKafkaProducer(
            bootstrap_servers=kafka, enable_idempotence=False, max_request_size=4 * 1024 * 1024
        )

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{uuid.uuid4().hex[:8]}-{self.n}"

    async def send(self, payload: dict[str, Any]) -> int:
        self.n += 1
        op_id = self.n
        await self.driver.send(Op(op_id, "test", payload, time.monotonic_ns()))
        return op_id

    async def open(self, solde: str = "0.00", client: str = "K1", expect: str = "applied") -> tuple[str, int]:
        cid = self._id("C")
        fields = {
            "event_id": str(uuid.uuid4()),
            "timestamp": int(time.time() * 1000),
            "compte_id": cid,
            "client_id": client,
            "type_compte": "COURANT",
            "devise": "EUR",
            "solde_initial": D(solde),
            "metadata": {"iban": "FR1420041010050500013M02606"},
        }
        return cid, await self.send({"event": "CompteOuvert", "key": cid, "fields": fields, "expect": expect})

    def money(self, event: str, cid: str, montant: str, eid: str | None = None) -> dict[str, Any]:
        return {
            "event": event,
            "key": cid,
            "expect": "applied",
            "fields": {
                "event_id": eid or str(uuid.uuid4()),
                "timestamp": int(time.time() * 1000),
                "compte_id": cid,
                "montant": D(montant),
                "devise": "EUR",
                "reference": "REF-T",
                "canal": "CARTE",
                "metadata": None,
            },
        }

    def transfer(self, src: str, dst: str, montant: str) -> dict[str, Any]:
        return {
            "event": "VirementEmis",
            "key": src,
            "expect": "applied",
            "fields": {
                "event_id": str(uuid.uuid4()),
                "timestamp": int(time.time() * 1000),
                "compte_source_id": src,
                "compte_destination_id": dst,
                "montant": D(montant),
                "devise": "EUR",
                "motif": "test",
                "reference": "VIR-T",
                "statut": "INITIE",
                "metadata": None,
            },
        }

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
    admin_dsn = embedded_postgres
    name = f"edabench_bank_test_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    await conn.execute(f"CREATE DATABASE {name}")
    await conn.close()
    dsn = admin_dsn.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PASSWORD}@") + "/" + name
    done = Completions()
    driver = BankDriver()
    ctx = DriverContext(
        options={"instances": 1, "partitions": 3, "lag_interval_s": 0.5, "namespace": ""},
        completions=done,
        services={"kafka": embedded_kafka, "postgres": dsn},
        run_id=f"t-{name}",
        run_dir=str(tmp_path_factory.mktemp("bank-pipeline")),  # service logs land in <run_dir>/logs
    )
    bank = Bank(driver, done, dsn, embedded_kafka)
    try:
        await driver.start(ctx)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        try:
            bank.schema_ids = await Encoder(make_registry(pool)).register_all()  # the ids the service knows
        finally:
            await pool.close()
        await bank.producer.start()
        yield bank
    finally:
        await bank.producer.stop()
        await driver.stop()
        conn = await asyncpg.connect(admin_dsn)
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.close()


async def test_open_event_creates_the_account_row_and_an_applied_outcome(bank: Bank) -> None:
    cid, op = await bank.open("250.00")
    assert await bank.done.wait(op) == [None]
    assert await bank.solde(cid) == D("250.00")
    assert bank.driver.tallies()["statuses"]["applied"] >= 1


async def test_duplicate_event_has_a_single_effect(bank: Bank) -> None:
    cid, op = await bank.open()
    await bank.done.wait(op)
    dep = bank.money("DepotEffectue", cid, "10.00")
    first = await bank.send(dep)
    again = await bank.send({**dep, "expect": "duplicate"})
    assert await bank.done.wait(first, again) == [None, None]
    assert await bank.solde(cid) == D("10.00")
    assert bank.driver.tallies()["statuses"].get("duplicate", 0) >= 1


async def test_transfer_without_funds_is_rejected_with_reason_and_no_effect(bank: Bank) -> None:
    src, o1 = await bank.open("30.00")
    dst, o2 = await bank.open("5.00")
    await bank.done.wait(o1, o2)
    op = await bank.send(bank.transfer(src, dst, "30.01"))
    assert await bank.done.wait(op) == ["rejected:insufficient_funds"]
    assert (await bank.solde(src), await bank.solde(dst)) == (D("30.00"), D("5.00"))


async def test_withdrawal_on_unknown_account_is_an_expected_rejection(bank: Bank) -> None:
    op = await bank.send({**bank.money("RetraitEffectue", "C-nobody", "1.00"), "expect": "rejected"})
    assert await bank.done.wait(op) == [None]


async def test_corrupt_bytes_go_to_the_dlq_with_a_reason_and_the_next_event_applies(
    bank: Bank, embedded_kafka: str
) -> None:
    cid, o = await bank.open()
    await bank.done.wait(o)
    bad = await bank.send({"event": "DepotEffectue", "key": cid, "raw": b"\x7fnot avro", "expect": "dlq"})
    good = await bank.send(bank.money("DepotEffectue", cid, "7.00"))  # same partition, after the bad one
    assert await bank.done.wait(bad, good) == [None, None]
    assert await bank.solde(cid) == D("7.00")
    headers = await _dlq_headers_of(embedded_kafka, bad)
    assert headers[H_DLQ_REASON] == b"bad_magic"
    assert headers[H_DLQ_TOPIC] == b"bancaire.depot.effectue"


async def _dlq_headers_of(kafka: str, op_id: int) -> dict[str, bytes]:
    c = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=None, auto_offset_reset="earliest")
    await c.start()
    try:
        await c.topics()
        tps = [TopicPartition(DLQ, p) for p in c.partitions_for_topic(DLQ) or ()]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for recs in (await c.getmany(timeout_ms=200)).values():
                for r in recs:
                    h = dict(r.headers)
                    if h.get(H_OP_ID) == str(op_id).encode():
                        return h
        raise AssertionError(f"no DLQ record for {op_id}")
    finally:
        await c.stop()


async def test_rest_api_answers_200_404_and_422(bank: Bank) -> None:
    cid, o = await bank.open("12.00", client="K-rest")
    await bank.done.wait(o)  # opening and deposit travel on different topics: no order between them
    dep = await bank.send(bank.money("DepotEffectue", cid, "0.50"))
    assert await bank.done.wait(dep) == [None]
    base = bank.driver.api_urls[0]
    async with aiohttp.ClientSession() as http:

        async def get(path: str) -> tuple[int, Any]:
            async with http.get(base + path) as r:
                return r.status, (await r.json() if r.content_type == "application/json" else await r.text())

        status, health = await get("/api/v1/health")
        assert status == 200 and health["postgres"] == "connected" and health["kafka"] == "connected"
        status, compte = await get(f"/api/v1/comptes/{cid}")
        assert status == 200 and compte["solde"] == "12.50" and compte["statut"] == "ACTIF"
        status, txs = await get(f"/api/v1/comptes/{cid}/transactions?limit=1")
        assert status == 200 and [t["montant"] for t in txs["transactions"]] == ["0.50"]
        status, comptes = await get("/api/v1/clients/K-rest/comptes")
        assert status == 200 and [c["id"] for c in comptes["comptes"]] == [cid]
        status, body = await get("/api/v1/comptes/C-does-not-exist")
        assert status == 404 and body["error"] == "compte_not_found"
        status, body = await get("/api/v1/comptes/C-does-not-exist/transactions")
        assert status == 404
        status, body = await get(f"/api/v1/comptes/{cid}/transactions?limit=abc")
        assert status == 422 and body["detail"][0]["loc"] == "limit"
        status, body = await get("/api/v1/comptes/" + "x" * 65)
        assert status == 422
        status, metrics = await get("/metrics")
        assert status == 200 and "bancaire_events_applied_total" in metrics


async def test_consumer_lag_gauge_is_reported(bank: Bank) -> None:
    deadline = time.monotonic() + 5
    while not bank.done.gauges and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert bank.done.gauges and bank.done.gauges[-1][0] == "consumer_lag"


async def test_a_redelivered_event_is_a_duplicate_that_reports_its_first_outcome(bank: Bank) -> None:
    cid, o = await bank.open()
    await bank.done.wait(o)
    dep = bank.money("DepotEffectue", cid, "3.00")
    first = await bank.send(dep)
    await bank.done.wait(first)
    # what a replay after a crash looks like to the driver: the same event, expecting "applied"
    again = await bank.send(dep)
    overdraft = {**bank.money("RetraitEffectue", cid, "99.00"), "expect": "rejected"}
    await bank.done.wait(await bank.send(overdraft))
    overdraft_again = await bank.send(overdraft)
    assert await bank.done.wait(again, overdraft_again) == [None, None]
    assert await bank.solde(cid) == D("3.00")


@pytest.mark.parametrize("kind", POISON_KINDS)
async def test_a_poison_record_goes_to_the_dlq_with_its_reason_and_bytes_and_the_next_event_applies(
    bank: Bank, kind: str
) -> None:
    cid, o = await bank.open("5.00")
    await bank.done.wait(o)
    p = next(x for x in poison.records(bank.schema_ids, uuid.uuid4().hex[:8]) if x.kind == kind)
    sent = await poison.send(bank.producer, [dataclasses.replace(p, key=cid)], f"poison-{cid}-")
    after = await bank.send(bank.money("DepotEffectue", cid, "2.50"))  # same partition, after the poison
    assert await bank.done.wait(after) == [None]
    assert await bank.solde(cid) == D("7.50")
    (op_id,) = sent
    dlq = (await poison.read_dlq(bank.kafka, {op_id}))[op_id][0]
    headers = dict(dlq.headers)
    assert (headers[H_DLQ_REASON].decode(), dlq.value) == (p.reason, p.value)
    assert headers[H_DLQ_TOPIC].startswith(b"bancaire.") and headers[H_DLQ_OFFSET].isdigit()
    assert H_DLQ_DETAIL in headers


async def test_a_record_the_database_refuses_is_isolated_and_the_rest_of_its_batch_applies_once(bank: Bank) -> None:
    cid, o = await bank.open()
    await bank.done.wait(o)
    deposits = [bank.money("DepotEffectue", cid, "1.00")["fields"] for _ in range(5)]
    deposits[2]["reference"] = "REFUSED-BY-DB"
    events: list[tuple[str, dict[str, Any]]] = [("DepotEffectue", f) for f in deposits]
    conn = await asyncpg.connect(bank.dsn)
    try:  # a rule the validator does not know: only the database can refuse this record
        await conn.execute(
            "ALTER TABLE bancaire.transactions ADD CONSTRAINT no_refused CHECK (reference <> 'REFUSED-BY-DB')"
        )
        pool = await asyncpg.create_pool(bank.dsn, min_size=1, max_size=1)
        try:
            writer = LedgerWriter(pool, asyncio.Event())
            decisions = await writer.apply(events)
            again = await writer.apply(events)  # a replay of the same batch changes nothing
        finally:
            await pool.close()
        n_tx = await conn.fetchval("SELECT count(*) FROM bancaire.transactions WHERE compte_id = $1", cid)
    finally:
        await conn.execute("ALTER TABLE bancaire.transactions DROP CONSTRAINT IF EXISTS no_refused")
        await conn.close()
    assert [d.status for d in decisions] == [APPLIED, APPLIED, DLQ_STATUS, APPLIED, APPLIED]
    assert decisions[2].reason == "db:check_violation"
    assert [d.status for d in again] == [DUPLICATE, DUPLICATE, DLQ_STATUS, DUPLICATE, DUPLICATE]
    assert (await bank.solde(cid), n_tx) == (D("4.00"), 4)


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
    assert PASSWORD in bank.dsn  # and the service connected with it: the other tests' events applied


def _cmdline(pid: int) -> bytes:
    """What `ps` shows of a process: its arguments."""
    return Path(f"/proc/{pid}/cmdline").read_bytes()
