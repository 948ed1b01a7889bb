"""The bank Gateway in front of a running bank pipeline, on the embedded broker and PostgreSQL.

The module brings up one pipeline (the bank launcher: namespaced topics, ledger, one service
instance) and one gateway process in front of it; every process is stopped by pid at the end,
also when a test fails. Tests use their own account ids and op ids, so their order does not
matter. Waits are bounded; nothing asserts on elapsed time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer

from targets.bank.avro import Encoder
from targets.bank.db import ENV_DSN
from targets.bank.gateway.subscriber import Subscriber
from targets.bank.launcher import Launcher
from targets.bank.procs import free_port
from targets.bank.registry import make_registry
from targets.bank.topics import H_OP_ID, H_ORIGIN, Names

pytestmark = pytest.mark.asyncio(loop_scope="module")

OUVERT = "bancaire.compte.ouvert"
DEPOT = "bancaire.depot.effectue"
#: the gateway's per-client queue in this module: small, so a client that stops reading is dropped soon
WS_QUEUE = 200


@dataclass
class Stack:
    url: str
    ws_url: str
    kafka: str
    dsn: str
    names: Names
    encoder: Encoder
    producer: AIOKafkaProducer
    http: aiohttp.ClientSession
    log: Path
    n: int = 0
    sent_ops: list[str] = field(default_factory=list)

    def op_id(self) -> str:
        self.n += 1
        return str(900_000_000 + self.n)

    async def open_account(self, origin: str = "gateway-test") -> tuple[str, str]:
        """Produce a CompteOuvert as any producer of the pipeline would; returns (account id, op id)."""
        cid = f"GW-{uuid.uuid4().hex[:10]}"
        fields = {"event_id": str(uuid.uuid4()), "timestamp": int(time.time() * 1000), "compte_id": cid,
                  "client_id": "K-GW", "type_compte": "COURANT", "devise": "EUR", "solde_initial": Decimal("12.50"),
                  "metadata": {"canal": "test"}}
        op = self.op_id()
        value = self.encoder.encode("CompteOuvert", fields)
        await self.producer.send_and_wait(self.names.events["CompteOuvert"], value, key=cid.encode(),
                                          headers=[(H_OP_ID, op.encode()), (H_ORIGIN, origin.encode())])
        return cid, op

    async def deposits(self, n: int, origin: str = "gateway-test") -> list[str]:
        """n deposits to an account that does not exist (the ledger rejects them; the stream carries them)."""
        ops = []
        futures = []
        for _ in range(n):
            op = self.op_id()
            fields = {"event_id": str(uuid.uuid4()), "timestamp": int(time.time() * 1000), "compte_id": "GW-NOBODY",
                      "montant": Decimal("1.00"), "devise": "EUR", "reference": "GW", "canal": "CARTE",
                      "metadata": None}
            futures.append(await self.producer.send(
                self.names.events["DepotEffectue"], self.encoder.encode("DepotEffectue", fields), key=b"GW-NOBODY",
                headers=[(H_OP_ID, op.encode()), (H_ORIGIN, origin.encode())]))
            ops.append(op)
        await asyncio.gather(*futures)
        return ops

    async def get(self, path: str, **kw: Any) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
        async with self.http.get(self.url + path, **kw) as r:
            return r.status, await r.json(content_type=None), r.headers

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.post(self.url + path, json=body) as r:
            return r.status, await r.json(content_type=None)

    async def metric(self, name: str, labels: str = "") -> float:
        async with self.http.get(self.url + "/metrics") as r:
            text = await r.text()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and labels in line and not line.startswith("#"):
                head, _, value = line.rpartition(" ")
                if head.split("{")[0] in (name, name + "_total"):
                    total += float(value)
        return total


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _spawn(cmd: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)


def _stop(proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """SIGTERM the process by pid, SIGKILL it if it is still there after `timeout_s`."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def until(check: Callable[[], Any], within_s: float, what: str, every_s: float = 0.05) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail naming `what` after `within_s`."""
    deadline = time.monotonic() + within_s
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        assert time.monotonic() < deadline, f"not within {within_s}s: {what}"
        await asyncio.sleep(every_s)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(embedded_kafka: str, embedded_postgres: str, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Stack]:
    root = tmp_path_factory.mktemp("bank-gateway")
    db = f"edabench_gateway_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(embedded_postgres)
    await conn.execute(f"CREATE DATABASE {db}")
    await conn.close()
    dsn = embedded_postgres.rsplit("/", 1)[0] + "/" + db
    names = Names(f"gw-{uuid.uuid4().hex[:8]}")
    launcher = Launcher({"namespace": names.namespace, "partitions": 3, "instances": 1},
                        {"kafka": embedded_kafka, "postgres": dsn}, str(root / "pipeline"))
    gateway: subprocess.Popen[bytes] | None = None
    log = root / "gateway.log"
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    producer = AIOKafkaProducer(bootstrap_servers=embedded_kafka, enable_idempotence=False, linger_ms=2)
    pool = None
    try:
        up = await launcher.start()
        port = free_port()
        cmd = [sys.executable, "-m", "targets.bank.gateway", "--port", str(port), "--kafka", embedded_kafka,
               "--bank-api", ",".join(f"http://127.0.0.1:{p}" for p in up["api_ports"]),
               "--namespace", up["namespace"], "--bank-group", up["group"], "--runs-root", str(root / "runs"),
               "--ws-queue", str(WS_QUEUE), "--ws-close-wait-s", "30", "--backend-timeout-s", "5"]
        gateway = _spawn(cmd, log, {**os.environ, ENV_DSN: dsn})  # the DSN in the environment, not in argv
        url = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            assert gateway is not None and gateway.poll() is None, f"the gateway exited:\n{_tail(log)}"
            try:
                async with http.get(url + "/api/v1/health") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        try:
            await until(healthy, 90, "the gateway reports every service healthy", every_s=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_tail(log)}") from None
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        encoder = Encoder(make_registry(pool), names)
        await encoder.register_all()
        await producer.start()
        yield Stack(url, f"ws://127.0.0.1:{port}/ws", embedded_kafka, dsn, names, encoder, producer, http, log)
    finally:
        if gateway is not None:
            _stop(gateway)
        await producer.stop()
        await http.close()
        if pool is not None:
            await pool.close()
        await launcher.stop()
        conn = await asyncpg.connect(embedded_postgres)
        await conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        await conn.close()


class Inbox:
    """What one subscriber received: (topic, op id, origin, payload) per event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int | None, str | None, dict[str, Any]]] = []

    def __call__(self, topic: str, op_id: int | None, origin: str | None, payload: dict[str, Any]) -> None:
        self.events.append((topic, op_id, origin, payload))

    def ops(self) -> set[int]:
        return {op for _, op, _, _ in self.events if op is not None}


async def subscribed(stack: Stack, topics: list[str], inbox: Inbox | None = None) -> tuple[Subscriber, Inbox,
                                                                                           asyncio.Task[None]]:
    inbox = inbox or Inbox()
    sub = Subscriber(stack.ws_url, topics, inbox)
    await sub.connect()
    return sub, inbox, asyncio.create_task(sub.run())


async def closed(*subs: tuple[Subscriber, Inbox, asyncio.Task[None]]) -> None:
    for sub, _, task in subs:
        await sub.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# ---- the proxy ------------------------------------------------------------------------------------
async def test_a_bancaire_request_is_answered_by_the_bank_api(stack: Stack) -> None:
    cid, _ = await stack.open_account()

    async def found() -> Any:
        status, body, _ = await stack.get(f"/api/v1/bancaire/comptes/{cid}")
        return body if status == 200 else None

    body = await until(found, 30, f"account {cid} served through the gateway")
    assert body["id"] == cid and Decimal(str(body["solde"])) == Decimal("12.50")


async def test_the_bank_apis_own_errors_come_back_as_they_are(stack: Stack) -> None:
    status, body, _ = await stack.get("/api/v1/bancaire/comptes/GW-never-opened")
    assert status == 404 and body["error"] == "compte_not_found"


async def test_a_request_gets_a_traceparent_of_the_callers_trace(stack: Stack) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    _, _, headers = await stack.get("/api/v1/bancaire/comptes/GW-x",
                                    headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"})
    ours = headers["traceparent"]
    assert ours.startswith(f"00-{trace}-") and not ours.endswith("-00f067aa0ba902b7-01")  # a span of its own


async def test_health_aggregates_the_bank_api_kafka_and_postgres(stack: Stack) -> None:
    status, body, _ = await stack.get("/api/v1/health")
    services = body["services"]
    assert status == 200 and body["status"] == "healthy"
    assert services["bancaire"]["healthy"] and services["bancaire"]["instances"][0]["body"]["status"] == "healthy"
    assert services["kafka"]["state"] == "streaming" and services["postgres"]["state"] == "connected"


# ---- the WebSocket hub fed by Kafka ------------------------------------------------------------------
async def test_a_websocket_client_receives_the_kafka_events_of_its_topic(stack: Stack) -> None:
    sub = await subscribed(stack, [OUVERT])
    try:
        cid, op = await stack.open_account(origin="run-x/0")
        topic, op_id, origin, payload = await until(lambda: next(
            (e for e in sub[1].events if e[3]["compte_id"] == cid), None), 30, "the CompteOuvert event on the socket")
        assert (topic, op_id, origin) == (OUVERT, int(op), "run-x/0")
        assert payload["solde_initial"] == "12.50" and payload["type_compte"] == "COURANT"
    finally:
        await closed(sub)


async def test_a_client_gets_no_events_of_topics_it_did_not_subscribe_to(stack: Stack) -> None:
    depots = await subscribed(stack, [DEPOT])
    ouverts = await subscribed(stack, [OUVERT])
    try:
        cid, _ = await stack.open_account()
        ops = await stack.deposits(3)
        await until(lambda: {int(o) for o in ops} <= depots[1].ops(), 30, "the deposits on the deposit subscriber")
        await until(lambda: any(e[3]["compte_id"] == cid for e in ouverts[1].events), 30, "the opening")
        assert {e[0] for e in depots[1].events} == {DEPOT} and {e[0] for e in ouverts[1].events} == {OUVERT}
    finally:
        await closed(depots, ouverts)


async def test_three_clients_all_receive_every_event(stack: Stack) -> None:
    subs = [await subscribed(stack, [DEPOT]) for _ in range(3)]
    try:
        ops = {int(o) for o in await stack.deposits(50)}
        for i, (_, inbox, _) in enumerate(subs):
            await until(lambda inbox=inbox: ops <= inbox.ops(), 30, f"client {i} got all 50 deposits")
        assert all(len([e for e in inbox.events if e[1] in ops]) == 50 for _, inbox, _ in subs)  # once each
    finally:
        await closed(*subs)


async def test_a_slow_client_is_dropped_with_a_reason_and_the_others_keep_receiving(stack: Stack) -> None:
    fast = [await subscribed(stack, [DEPOT]) for _ in range(2)]
    slow = Subscriber(stack.ws_url, [DEPOT], lambda *a: None, name="slow")
    await slow.connect()  # subscribed, then never reads: its socket fills, then its queue at the gateway
    dropped_before = await stack.metric("gateway_ws_clients_dropped", 'reason="slow_consumer"')
    sent: set[int] = set()
    try:
        for _ in range(400):  # bounded: ~80,000 events at most
            # a chunk below the queue limit, then wait for the fast clients: they never fall behind by a queue's worth
            sent |= {int(o) for o in await stack.deposits(WS_QUEUE // 2)}
            for _, inbox, _ in fast:
                await until(lambda inbox=inbox, sent=sent: sent <= inbox.ops(), 60, "a fast client caught up")
            if await stack.metric("gateway_ws_clients_dropped", 'reason="slow_consumer"') > dropped_before:
                break
        else:
            pytest.fail(f"the slow client was never dropped after {len(sent)} events")
        slow_task = asyncio.create_task(slow.run())  # reads what its socket holds, then the close frame
        await asyncio.wait_for(slow_task, 60)
        assert slow.dropped and slow.close_code == 1008 and "slow consumer" in slow.close_reason
        assert slow.received < len(sent)
        more = {int(o) for o in await stack.deposits(20)}
        for _, inbox, _ in fast:
            await until(lambda inbox=inbox: more <= inbox.ops(), 30, "a fast client got the events after the drop")
        assert all(sub.closed_by is None for sub, _, _ in fast)
        assert await stack.metric("gateway_ws_messages_undelivered", 'reason="slow_consumer"') >= 1
    finally:
        await slow.close()
        await closed(*fast)


# ---- the simulation API and the seed's full flow -------------------------------------------------------
async def _finished(stack: Stack, within_s: float) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        _, body, _ = await stack.get("/api/v1/simulation/status")
        return body if body["state"] in ("finished", "stopped", "failed") else None

    return await until(done, within_s, "the simulation ended", every_s=0.5)


async def _full_flow(stack: Stack, rate: float, duration: float) -> None:
    """The seed's TestMVP_FullFlow through the gateway: start a simulation, ~rate x duration events,
    every account present in the bank, status and metrics report them."""
    opened = Inbox()
    sub = await subscribed(stack, [OUVERT], opened)
    try:
        status, started = await stack.post("/api/v1/simulation/start", {"rate": rate, "duration": duration})
        assert status == 202, started
        end = await _finished(stack, duration + 120)
        assert end["state"] == "finished", end
        result = end["result"]
        expected = rate * duration
        assert abs(end["sent"] - expected) <= expected * 0.01 and end["errors"] == 0
        assert result["books_balanced"] and result["problems"] == []
        assert await asyncio.to_thread(Path(end["run_dir"], "summary.json").is_file)
        # the run's accounts, as the WebSocket saw them opened, are all in the bank, through the gateway
        mine = {p["compte_id"] for _, _, origin, p in opened.events if (origin or "").startswith(f"{end['run_id']}/")}
        assert mine
        for cid in sorted(mine):
            status, body, _ = await stack.get(f"/api/v1/bancaire/comptes/{cid}")
            assert status == 200 and body["id"] == cid
        assert await stack.metric("gateway_simulation_runs", 'result="finished"') >= 1
        assert await stack.metric("gateway_ws_messages_delivered") >= len(mine)
    finally:
        await closed(sub)


async def test_a_simulation_started_through_the_gateway_runs_the_bank_workload(stack: Stack) -> None:
    await _full_flow(stack, rate=20, duration=10)


@pytest.mark.slow
async def test_the_seeds_full_flow_rate_10_for_60_s(stack: Stack) -> None:
    await _full_flow(stack, rate=10, duration=60)


async def test_a_second_start_while_a_run_is_in_progress_is_a_409_and_stop_ends_the_run(stack: Stack) -> None:
    status, _ = await stack.post("/api/v1/simulation/start", {"rate": 5, "duration": 600})
    assert status == 202
    try:
        status, body = await stack.post("/api/v1/simulation/start", {"rate": 5, "duration": 5})
        assert status == 409 and body["error"] == "busy" and body["status"]["request"]["duration"] == 600
    finally:
        status, body = await stack.post("/api/v1/simulation/stop")
    assert status == 202 and body["state"] == "stopping"
    end = await _finished(stack, 120)
    assert end["state"] == "stopped" and end["result"]["interrupted"] and end["result"]["books_balanced"]


async def test_a_start_with_bad_input_is_a_422_naming_the_field(stack: Stack) -> None:
    status, body = await stack.post("/api/v1/simulation/start", {"rate": -1, "durationn": 60})
    assert status == 422
    assert {d["loc"] for d in body["detail"]} == {"rate", "durationn"}
    _, now, _ = await stack.get("/api/v1/simulation/status")
    assert now["state"] != "starting"
