"""Bring the bank pipeline up for a run: topics, tables, schemas, service instances, chaos.

Used once per run by `BankDriver.launch` (the harness's parent process), or by a driver that was
started without it (tests, direct use), which then owns the service itself.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from targets.bank.avro import Encoder
from targets.bank.db import ENV_DSN, create_schema, save_start_offsets
from targets.bank.procs import ServiceProcs, free_port
from targets.bank.registry import ENV_URL as ENV_REGISTRY
from targets.bank.registry import make_registry
from targets.bank.topics import end_offsets, ensure_topics, input_partitions

log = logging.getLogger(__name__)


class Launcher:
    def __init__(self, options: dict[str, Any], services: dict[str, str], run_dir: str | None) -> None:
        self.o = options
        self.kafka = services["kafka"]
        self.dsn = services["postgres"]
        self.run_dir = run_dir
        self.procs: ServiceProcs | None = None
        self.partitions = 0
        self.group = ""
        self._chaos: asyncio.Task[None] | None = None

    @property
    def pids(self) -> dict[str, int]:
        if self.procs is None:
            return {}
        return {f"bancaire-{i}": p.pid for i, p in enumerate(self.procs.procs) if p is not None}

    async def start(self) -> dict[str, Any]:
        o = self.o
        reset = bool(o.get("reset", True))
        # a clean run gets a group of its own: no stale members or offsets from earlier runs
        group = str(o.get("group") or ("bancaire-" + uuid.uuid4().hex[:8] if reset else "bancaire"))
        self.group = group
        await ensure_topics(self.kafka, int(o.get("partitions", 3)), writers=int(o.get("instances", 1)))
        self.partitions = len(await input_partitions(self.kafka))
        conn = await asyncpg.connect(self.dsn)
        try:
            await create_schema(conn, reset=reset)
            if reset:
                await save_start_offsets(conn, await end_offsets(self.kafka))
        finally:
            await conn.close()
        await self._register_schemas()
        n = int(o.get("instances", 1))
        base = int(o.get("api_port", 0))
        ports = [base + i for i in range(n)] if base else [free_port() for _ in range(n)]
        args = [
            "--kafka",
            self.kafka,
            "--group",
            group,
            "--max-batch",
            str(o.get("max_batch", 2000)),
            "--fetch-wait-ms",
            str(o.get("fetch_wait_ms", 5)),
        ]
        # secrets (a DSN's password, a registry URL's credentials) go in the environment, not in argv
        env = {ENV_DSN: self.dsn}
        if o.get("schema_registry_url"):
            env[ENV_REGISTRY] = str(o["schema_registry_url"])
        log_dir = Path(self.run_dir) / "logs" if self.run_dir else Path(tempfile.mkdtemp(prefix="edabench-bank-"))
        self.procs = ServiceProcs(args, ports, log_dir, env)
        try:
            for i in range(n):
                self.procs.spawn(i)
            await self.procs.wait_ready(self.partitions, float(o.get("ready_timeout_s", 60)))
        except BaseException:
            await self.stop()
            raise
        if o.get("kill_at_s") is not None:
            self._chaos = asyncio.create_task(self._kill_and_restart(), name="bank-chaos")
        return {"bank_launched": True, "group": group, "api_ports": ports, "pids": self.pids}

    async def _register_schemas(self) -> None:
        """Registered here once so the service and every driver find the same ids."""
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        registry = make_registry(pool, self.o.get("schema_registry_url"))
        try:
            await Encoder(registry).register_all()
        finally:
            await registry.close()
            await pool.close()

    async def _kill_and_restart(self) -> None:
        """Chaos: SIGKILL instance 0 at kill_at_s (after start), restart it restart_after_s later."""
        assert self.procs is not None
        await asyncio.sleep(float(self.o["kill_at_s"]))
        self.procs.kill(0)
        await asyncio.sleep(float(self.o.get("restart_after_s", 5)))
        self.procs.spawn(0)
        log.warning("restarted bancaire[0]")

    async def stop(self) -> None:
        if self._chaos is not None:
            self._chaos.cancel()
            try:
                await self._chaos
            except (asyncio.CancelledError, Exception):
                pass
            self._chaos = None
        if self.procs is not None:
            await self.procs.stop(float(self.o.get("stop_timeout_s", 15)))
            self.procs = None
