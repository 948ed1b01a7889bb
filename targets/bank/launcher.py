"""Bring the bank pipeline up for a run: topics, tables, schemas, supervised service instances, chaos.

Used once per run by `BankDriver.launch` (the harness's process), or by a driver that was started
without it (tests, direct use), which then owns the service itself.

Isolation: a run gets a namespace (option `namespace`, default "auto": a tag made of the run
directory's name), which prefixes its topics and consumer group and names its PostgreSQL schema
(`topics.Names`), so two runs on one `edabench infra up` stack never see each other's events,
outcomes or rows. Namespace "" keeps the seed's names (one run at a time).

Supervision: a task checks the instances every `check_interval_s`; one that ended unbidden (not
in `stop`, not a chaos kill) is named in `problems` (with t = seconds since the service was up) and
restarted per `restart` / `max_restarts`.
`problems` and `pids` are the very objects `start()` returned: the caller sees them change.

Options: partitions (3), instances (1), reset (true), group, namespace ("auto"), schema_registry_url,
api_port (0 = free ports), max_batch (2000), fetch_wait_ms (5), outcome_partitions (max(6, instances)),
outcome_linger_ms (5), ready_timeout_s (60), stop_timeout_s (15),
restart ("always" | "never"), max_restarts (5, per instance), keep_topics (false: a namespaced run's
topics are deleted at stop), keep_schema (true: its PostgreSQL schema stays for a post-mortem),
kill_at_s / restart_after_s (chaos: SIGKILL instance 0, restart it later).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from targets.bank.avro import Encoder
from targets.bank.db import ENV_DSN, create_schema, drop_schema, save_start_offsets
from targets.bank.procs import ServiceProcs, describe_exit, free_port
from targets.bank.registry import ENV_URL as ENV_REGISTRY
from targets.bank.registry import make_registry
from targets.bank.topics import Names, delete_topics, end_offsets, ensure_topics, input_partitions, namespace_from

log = logging.getLogger(__name__)

RESTART_POLICIES = ("always", "never")


def run_namespace(option: str | None, run_dir: str | None) -> str:
    """The namespace a run uses: "auto" (default) is a tag unique to the run, made of its directory's
    name and a hash of its full path (a test's `run` directory is not unique by name alone); any
    other value is used as it is ("" = the seed's names)."""
    if option is None or option == "auto":
        if not run_dir:
            return f"r{uuid.uuid4().hex[:10]}"
        path = Path(run_dir).resolve()
        return namespace_from(path.name, unique=str(path))
    Names(option)  # refused here, before anything starts, if malformed
    return option


class Launcher:
    def __init__(self, options: dict[str, Any], services: dict[str, str], run_dir: str | None) -> None:
        self.o = options
        self.kafka = services["kafka"]
        self.dsn = services["postgres"]
        self.run_dir = run_dir
        self.procs: ServiceProcs | None = None
        self.partitions = 0
        self.group = ""
        self.names = Names("")
        #: name -> pid of the running instances, updated in place on every restart
        self.pids: dict[str, int] = {}
        #: every unbidden death and restart, one line each (the caller reports them)
        self.problems: list[str] = []
        self.restarts: dict[int, int] = {}
        self.check_interval_s = 0.5
        self._t0 = time.monotonic()
        self._chaos: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._created = False  # the namespace's topics exist: stop() cleans up after them

    async def start(self) -> dict[str, Any]:
        o = self.o
        restart = str(o.get("restart", "always"))
        if restart not in RESTART_POLICIES:
            raise ValueError(f"bank option restart = {restart!r}: one of {', '.join(RESTART_POLICIES)}")
        self.problems = []
        self.restarts = {}
        self.pids = {}
        ns = run_namespace(o.get("namespace", "auto"), self.run_dir)
        names = self.names = Names(ns)
        reset = bool(o.get("reset", True))
        n = int(o.get("instances", 1))
        # a clean run gets a group of its own: no stale members or offsets from earlier runs
        group = str(o.get("group") or (f"{names.group}-{uuid.uuid4().hex[:8]}" if reset else names.group))
        self.group = group
        try:
            await self._prepare(reset, n)
        except BaseException:
            await self.stop()
            raise
        base = int(o.get("api_port", 0))
        ports = [base + i for i in range(n)] if base else [free_port() for _ in range(n)]
        args = [
            "--kafka",
            self.kafka,
            "--namespace",
            ns,
            "--group",
            group,
            "--max-batch",
            str(o.get("max_batch", 2000)),
            "--fetch-wait-ms",
            str(o.get("fetch_wait_ms", 5)),
            "--outcome-linger-ms",
            str(o.get("outcome_linger_ms", 5)),
        ]
        # secrets (a DSN's password, a registry URL's credentials) go in the environment, not in argv
        env = {ENV_DSN: self.dsn}
        if o.get("schema_registry_url"):
            env[ENV_REGISTRY] = str(o["schema_registry_url"])
        log_dir = Path(self.run_dir) / "logs" if self.run_dir else Path(tempfile.mkdtemp(prefix="edabench-bank-"))
        self.procs = ServiceProcs(args, ports, log_dir, env)
        try:
            for i in range(n):
                self.pids[self.procs.name(i)] = self.procs.spawn(i)
            await self.procs.wait_ready(self.partitions, float(o.get("ready_timeout_s", 60)))
        except BaseException:
            await self.stop()
            raise
        self._t0 = time.monotonic()  # the t= of a problem: seconds since the service was up
        self._watch = asyncio.create_task(self._supervise(restart, int(o.get("max_restarts", 5))), name="bank-watch")
        if o.get("kill_at_s") is not None:
            self._chaos = asyncio.create_task(self._kill_and_restart(), name="bank-chaos")
        log.info("bank namespace %r (schema %s), group %s, pids %s", ns, names.schema, group, self.pids)
        return {
            "bank_launched": True,
            "namespace": ns,
            "group": group,
            "api_ports": ports,
            "pids": self.pids,
            "problems": self.problems,
        }

    async def _prepare(self, reset: bool, instances: int) -> None:
        """Topics, tables (a reset drops the run's ledger first), where a fresh group starts, schema ids."""
        names = self.names
        out_parts = self.o.get("outcome_partitions")
        self._created = True
        await ensure_topics(
            self.kafka,
            int(self.o.get("partitions", 3)),
            writers=instances,
            names=names,
            outcome_partitions=int(out_parts) if out_parts else None,
        )
        self.partitions = len(await input_partitions(self.kafka, names))
        conn = await asyncpg.connect(self.dsn)
        try:
            await create_schema(conn, reset=reset, schema=names.schema)
            if reset:
                await save_start_offsets(conn, await end_offsets(self.kafka, names), names.schema)
        finally:
            await conn.close()
        await self._register_schemas()

    async def _register_schemas(self) -> None:
        """Registered here once (subjects of the run's namespace) so the service and every driver
        find the same ids."""
        pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=1)
        registry = make_registry(pool, self.o.get("schema_registry_url"))
        try:
            await Encoder(registry, self.names).register_all()
        finally:
            await registry.close()
            await pool.close()

    # ---- supervision ---------------------------------------------------------------------------
    async def _supervise(self, policy: str, max_restarts: int) -> None:
        """Every `check_interval_s`: report each instance that ended unbidden and restart it per the
        policy. A failure of this task itself is a problem too (supervision would be off)."""
        try:
            while True:
                await asyncio.sleep(self.check_interval_s)
                self.check(policy, max_restarts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("bank instance supervision failed")
            self.problems.append(f"bank instance supervision stopped: {type(exc).__name__}: {exc}")

    def check(self, policy: str = "always", max_restarts: int = 5) -> None:
        """One round of supervision (what the task runs; synchronous, spawning does not block)."""
        procs = self.procs
        if procs is None:
            return
        for i, pid, code in procs.exited():
            name = procs.name(i)
            what = f"{name} (pid {pid}) {describe_exit(code)} at t={time.monotonic() - self._t0:.1f}s"
            done = self.restarts.get(i, 0)
            log.warning("%s; log %s ends:\n%s", what, procs.log_path(i), procs.tail(i, 15))
            if policy != "always":
                self.problems.append(f"{what}; not restarted (restart = {policy})")
                procs.give_up(i)
                self.pids.pop(name, None)
            elif done >= max_restarts:
                self.problems.append(f"{what}; not restarted ({done} restarts already, max_restarts = {max_restarts})")
                procs.give_up(i)
                self.pids.pop(name, None)
            else:
                self.restarts[i] = done + 1
                self.pids[name] = new_pid = procs.spawn(i)
                self.problems.append(f"{what}; restarted as pid {new_pid} ({done + 1} of {max_restarts})")

    async def _kill_and_restart(self) -> None:
        """Chaos: SIGKILL instance 0 at kill_at_s (after start), restart it restart_after_s later.
        Deliberate: not a problem, and not restarted by the supervision meanwhile."""
        assert self.procs is not None
        await asyncio.sleep(float(self.o["kill_at_s"]))
        await self.procs.sigkill(0)
        await asyncio.sleep(float(self.o.get("restart_after_s", 5)))
        self.pids[self.procs.name(0)] = self.procs.spawn(0)
        log.warning("restarted bancaire-0 (chaos)")

    # ---- stop ----------------------------------------------------------------------------------
    async def stop(self) -> None:
        """Supervision and chaos off, instances stopped by PID (SIGTERM, wait, SIGKILL), then a
        namespaced run's topics deleted (unless keep_topics) and its schema dropped (if keep_schema
        is false). Safe to call twice."""
        for attr in ("_chaos", "_watch"):
            task: asyncio.Task[None] | None = getattr(self, attr)
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
                setattr(self, attr, None)
        procs, self.procs = self.procs, None
        try:
            if procs is not None:
                self.problems.extend(await procs.stop(float(self.o.get("stop_timeout_s", 15))))
        finally:
            if self._created:
                self._created = False
                await self._clean_up()

    async def _clean_up(self) -> None:
        """What the run leaves behind on the shared stack. Why delete topics: the embedded broker
        holds every record in memory until its topic goes. A failure here is logged, not raised:
        the run's results do not depend on it."""
        names = self.names
        if not names.namespace:
            return
        if not self.o.get("keep_topics", False):
            try:
                await delete_topics(self.kafka, names)
            except Exception as exc:
                log.warning("could not delete the topics of namespace %r: %r", names.namespace, exc)
        if self.o.get("keep_schema", True) is False:
            try:
                conn = await asyncpg.connect(self.dsn)
                try:
                    await drop_schema(conn, names.schema)
                finally:
                    await conn.close()
            except Exception as exc:
                log.warning("could not drop schema %s: %r", names.schema, exc)
