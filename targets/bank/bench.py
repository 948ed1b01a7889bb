"""`python -m targets.bank.bench`: the service's apply throughput, measured on its own.

Pre-loads the topics (accounts first, applied; then a money mix), then starts the service on the
backlog and times the drain: events/s through decode, one DB transaction per batch, outcomes and
offset commit. No load generator competes for the CPU, so this is the service's ceiling here.
Uses the embedded broker and PostgreSQL unless --kafka/--postgres are given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from targets.bank.avro import Encoder
from targets.bank.launcher import Launcher
from targets.bank.registry import make_registry
from targets.bank.topics import Names


def _events(n_accounts: int, n_events: int, seed: int) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    ids = [f"B-{i:07d}" for i in range(n_accounts)]
    opens = [
        (
            "CompteOuvert",
            a,
            {
                "event_id": str(uuid.uuid4()),
                "timestamp": now,
                "compte_id": a,
                "client_id": f"K-{i // 2}",
                "type_compte": "COURANT",
                "devise": "EUR",
                "solde_initial": Decimal("100000.00"),
                "metadata": {"iban": "FR76"},
            },
        )
        for i, a in enumerate(ids)
    ]
    money = []
    for _ in range(n_events):
        r = rng.random()
        a = rng.choice(ids)
        amount = Decimal(rng.randrange(100, 20000)) / 100
        base = {
            "event_id": str(uuid.uuid4()),
            "timestamp": now,
            "montant": amount,
            "devise": "EUR",
            "reference": "REF-BENCH",
            "metadata": None,
        }
        if r < 0.4:
            money.append(("DepotEffectue", a, {**base, "compte_id": a, "canal": "CARTE"}))
        elif r < 0.7:
            money.append(("RetraitEffectue", a, {**base, "compte_id": a, "canal": "GUICHET"}))
        else:
            b = rng.choice(ids)
            money.append(
                (
                    "VirementEmis",
                    a,
                    {**base, "compte_source_id": a, "compte_destination_id": b, "motif": "", "statut": "INITIE"},
                )
            )
    return opens, money


async def _produce(kafka: str, enc: Encoder, names: Names, events: list[Any]) -> float:
    p = AIOKafkaProducer(
        bootstrap_servers=kafka, acks=1, linger_ms=5, enable_idempotence=False, max_batch_size=256 * 1024
    )
    await p.start()
    t0 = time.perf_counter()
    try:
        futs = []
        for name, key, rec in events:
            futs.append(
                await p.send(
                    names.events[name],
                    enc.encode(name, rec),
                    key=key.encode(),
                    headers=[("edabench-op-id", b"bench"), ("edabench-origin", b"bench")],
                )
            )
        for f in futs:
            await f
    finally:
        await p.stop()
    return time.perf_counter() - t0


async def _count(dsn: str, schema: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {schema}.processed_events"))
    finally:
        await conn.close()


async def _drain(dsn: str, schema: str, target: int, timeout_s: float) -> tuple[float, list[tuple[float, int]]]:
    t0 = time.perf_counter()
    samples = []
    while (n := await _count(dsn, schema)) < target:
        samples.append((time.perf_counter() - t0, n))
        if time.perf_counter() - t0 > timeout_s:
            raise TimeoutError(f"{n}/{target} processed after {timeout_s}s")
        await asyncio.sleep(0.25)
    samples.append((time.perf_counter() - t0, n))
    return time.perf_counter() - t0, samples


async def _stages(launcher: Launcher) -> dict[str, float]:
    """Batch count, mean batch size and mean time per stage (ms), from the instance's /metrics."""
    import aiohttp

    assert launcher.procs is not None
    url = f"http://127.0.0.1:{launcher.procs.ports[0]}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        text = await r.text()
    vals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("bancaire_batch_size_", "bancaire_stage_seconds_")) and not line.startswith("#"):
            key, _, v = line.rpartition(" ")
            vals[key] = float(v)
    n = vals.get("bancaire_batch_size_count", 0) or 1
    out = {"batches": n, "mean_batch": round(vals.get("bancaire_batch_size_sum", 0) / n, 1)}
    for stage in ("decode", "db", "outcomes", "commit"):
        total = vals.get(f'bancaire_stage_seconds_sum{{stage="{stage}"}}', 0)
        count = vals.get(f'bancaire_stage_seconds_count{{stage="{stage}"}}', 0) or 1
        out[f"{stage}_ms"] = round(1000 * total / count, 2)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    stack: Any = None
    if args.kafka and args.postgres:
        services = {"kafka": args.kafka, "postgres": args.postgres}
    else:
        from infra.stack import Stack

        stack = Stack(
            needs={"kafka", "postgres"},
            run_dir=Path(tempfile.mkdtemp(prefix="bank-bench-")),
            use_env=False,
            reuse=False,
            timeout=60,
        )
        await stack.start()
        services = dict(stack.urls)
    opts: dict[str, Any] = {
        "partitions": args.partitions,
        "instances": args.instances,
        "max_batch": args.max_batch,
        "fetch_wait_ms": args.fetch_wait_ms,
    }
    out: dict[str, Any] = {"events": args.events, **opts}
    names = Names(f"bench-{uuid.uuid4().hex[:8]}")  # a namespace of its own: an external stack may be shared
    launcher: Launcher | None = None
    try:
        opens, money = _events(args.accounts, args.events, args.seed)
        # the topics outlive the first stop: the backlog is built between the two starts
        launcher = Launcher({**opts, "namespace": names.namespace, "keep_topics": True}, services, None)
        await launcher.start()  # creates everything, starts the service on the empty topics
        pool = await asyncpg.create_pool(services["postgres"], min_size=1, max_size=1)
        enc = Encoder(make_registry(pool), names)
        await enc.register_all()
        await _produce(services["kafka"], enc, names, opens)
        await _drain(services["postgres"], names.schema, len(opens), 120)
        await launcher.stop()  # the backlog is built while nothing consumes
        out["produce_s"] = round(await _produce(services["kafka"], enc, names, money), 2)
        await pool.close()
        # this time the topics and the schema go at the stop
        launcher.o = {**opts, "namespace": names.namespace, "reset": False, "group": launcher.group}
        launcher.o["keep_schema"] = False
        t_start = time.perf_counter()
        await launcher.start()
        out["service_start_s"] = round(time.perf_counter() - t_start, 2)
        spy = None
        if args.profile:  # sample the instance while it drains (py-spy, if installed)
            pid = launcher.pids["bancaire-0"]
            spy = await asyncio.create_subprocess_exec(
                "py-spy",
                "record",
                "-p",
                str(pid),
                "-o",
                args.profile,
                "-f",
                "raw",
                "-r",
                "200",
                "--nonblocking",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
        try:
            total = len(opens) + len(money)
            drain_s, samples = await _drain(services["postgres"], names.schema, total, args.timeout_s)
            out["service"] = await _stages(launcher)
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.wait_for(spy.wait(), 30)
            await launcher.stop()
        # steady rate: between 10% and 90% of the backlog, away from start-up and tail effects
        lo = next(s for s in samples if s[1] >= len(opens) + 0.1 * len(money))
        hi = next(s for s in samples if s[1] >= len(opens) + 0.9 * len(money))
        out["drain_s"] = round(drain_s, 2)
        out["events_per_s"] = round((hi[1] - lo[1]) / max(1e-9, hi[0] - lo[0]))
        out["events_per_s_overall"] = round(len(money) / drain_s)
    finally:
        if launcher is not None:  # after a failure: every process stopped, nothing left on the stack
            launcher.o = {**launcher.o, "keep_topics": False, "keep_schema": False}
            await launcher.stop()
        if stack is not None:
            await stack.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m targets.bank.bench", description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--accounts", type=int, default=2_000)
    p.add_argument("--partitions", type=int, default=3)
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--max-batch", type=int, default=2000)
    p.add_argument("--fetch-wait-ms", type=int, default=5)
    p.add_argument("--timeout-s", type=float, default=600)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", help="write a py-spy raw (collapsed) profile of the draining instance here")
    p.add_argument("--kafka")
    p.add_argument("--postgres")
    args = p.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
