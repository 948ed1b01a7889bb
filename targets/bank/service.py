"""`python -m targets.bank.service`: the bancaire service (consumer + REST API + /metrics).

With `--instances N > 1` this process supervises N single-instance children (ports api-port+i)
and forwards SIGTERM to them; the driver starts instances itself so it can kill one for chaos.

The PostgreSQL DSN may hold a password: give it in the environment (`EDABENCH_POSTGRES_DSN`), which
`ps` does not show, rather than with `--postgres`; children always get it that way.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any

import asyncpg
import uvicorn

from targets.bank import metrics as m
from targets.bank.api import App, Status
from targets.bank.avro import Decoder
from targets.bank.consumer import BankConsumer, Config
from targets.bank.db import ENV_DSN, create_schema, load_start_offsets
from targets.bank.procs import die_with_parent
from targets.bank.registry import make_registry
from targets.bank.retry import Stopping, is_transient, until_done
from targets.bank.topics import Names

log = logging.getLogger("bancaire")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service owns SIGTERM."""

    @contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def,override]
        yield


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m targets.bank.service", description=__doc__)
    p.add_argument("--kafka", required=True, help="bootstrap servers, host:port")
    p.add_argument(
        "--postgres",
        default=None,
        help=f"PostgreSQL DSN; default ${ENV_DSN} (prefer it: a password on the command line shows in ps)",
    )
    p.add_argument("--schema-registry-url", default=None, help="Confluent registry; default: PostgreSQL table")
    p.add_argument(
        "--namespace",
        default="",
        help="prefix of every topic and suffix of the PostgreSQL schema (bancaire_<ns>); '' = the seed's names",
    )
    p.add_argument("--group", default=None, help="consumer group; default: the namespace's (<ns>.bancaire)")
    p.add_argument("--api-port", type=int, default=8080)
    p.add_argument("--api-host", default="127.0.0.1")
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--instance-index", type=int, default=0)
    p.add_argument("--instance-count", type=int, default=1, help="instances in the group (output partitioning)")
    p.add_argument("--max-batch", type=int, default=2000)
    p.add_argument("--fetch-wait-ms", type=int, default=5)
    p.add_argument(
        "--outcome-linger-ms", type=float, default=5, help="the outcome producer's linger: fewer, larger batches"
    )
    p.add_argument(
        "--session-timeout-ms", type=int, default=3000, help="group session: how long a dead member holds partitions"
    )
    p.add_argument("--stop-timeout-s", type=float, default=8.0)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    args.postgres = args.postgres or os.environ.get(ENV_DSN)
    if not args.postgres:
        p.error(f"no PostgreSQL DSN: set {ENV_DSN} (or pass --postgres)")
    try:
        args.names = Names(args.namespace)
    except ValueError as exc:
        p.error(str(exc))
    args.group = args.group or args.names.group
    return args


async def _connect(args: argparse.Namespace, stopping: asyncio.Event) -> asyncpg.Pool:
    """A pool once the database answers: a service started while PostgreSQL restarts waits for it.
    Only an outage is waited out; a wrong password or a missing database fails at once."""

    async def attempt() -> asyncpg.Pool:
        # command_timeout: a database that hangs (rather than refuses) must end in a retry too
        return await asyncpg.create_pool(args.postgres, min_size=2, max_size=4, command_timeout=60)

    return await until_done(attempt, stopping, "connecting to PostgreSQL", record_error=lambda e: not is_transient(e))


async def run_instance(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    names: Names = args.names
    pool = await _connect(args, stop)
    try:

        async def prepare() -> dict[tuple[str, int], int]:
            async with pool.acquire() as conn:
                await create_schema(conn, schema=names.schema)
                return await load_start_offsets(conn, names.schema)

        starts = await until_done(
            prepare, stop, "creating the ledger tables", record_error=lambda e: not is_transient(e)
        )
        registry = make_registry(pool, args.schema_registry_url)
        status = Status(args.instance_index)
        m.SERVICE.info({"namespace": names.namespace, "schema": names.schema, "group": args.group})
        log.info("namespace %r: schema %s, group %s", names.namespace, names.schema, args.group)
        cfg = Config(
            kafka=args.kafka,
            group=args.group,
            max_batch=args.max_batch,
            fetch_wait_ms=args.fetch_wait_ms,
            session_timeout_ms=args.session_timeout_ms,
            instance=args.instance_index,
            instances=args.instance_count,
            names=names,
            outcome_linger_ms=args.outcome_linger_ms,
        )
        consumer = BankConsumer(cfg, pool, Decoder(registry), status, starts)
        server = _Server(
            uvicorn.Config(
                App(pool, status, names.schema),
                host=args.api_host,
                port=args.api_port,
                log_level="warning",
                lifespan="off",
                access_log=False,
            )
        )
        tasks = [
            asyncio.create_task(consumer.run(), name="consumer"),
            asyncio.create_task(server.serve(), name="api"),
        ]
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        log.info("instance %d stopping", args.instance_index)
        consumer.stopping.set()
        server.should_exit = True
        stopper.cancel()
        _, pending = await asyncio.wait(tasks, timeout=args.stop_timeout_s)
        for t in pending:  # e.g. stuck in a group rejoin: do not outlive the caller's patience
            log.warning("%s did not stop in %.0fs: cancelled", t.get_name(), args.stop_timeout_s)
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await registry.close()
        for t, res in zip(tasks, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.error("%s failed: %r", t.get_name(), res)
                raise res
    finally:
        await pool.close()


def supervise(args: argparse.Namespace, argv: list[str]) -> int:
    """Run N children of this module, one per instance; SIGTERM/SIGINT are forwarded to all, and
    they die with this process. The DSN reaches them in the environment, never on their command lines."""
    children: list[subprocess.Popen[bytes]] = []
    base = argv
    env = {**os.environ, ENV_DSN: args.postgres}
    for i in range(args.instances):
        cmd = [
            sys.executable,
            "-m",
            "targets.bank.service",
            *base,
            "--instances",
            "1",
            "--instance-count",
            str(args.instances),
            "--instance-index",
            str(i),
            "--api-port",
            str(args.api_port + i),
        ]
        children.append(subprocess.Popen(cmd, env=env, preexec_fn=die_with_parent(os.getpid())))

    def forward(signum: int, _frame: Any) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(c.poll() is None for c in children):
        time.sleep(0.2)
    return max(c.returncode or 0 for c in children)


_PER_CHILD = ("--instances", "--instance-index", "--instance-count", "--api-port", "--postgres")


def child_argv(argv: list[str]) -> list[str]:
    """`argv` without the flags each child gets on its own (and the DSN, which goes in its environment)."""
    clean: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in _PER_CHILD:
            skip = True
        elif not a.startswith(tuple(f"{f}=" for f in _PER_CHILD)):
            clean.append(a)
    return clean


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s bancaire[{args.instance_index}] %(levelname)s %(name)s: %(message)s",
    )
    if args.instances > 1:
        return supervise(args, child_argv(argv))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(run_instance(args))
    except Stopping as exc:  # asked to stop before the database ever answered
        log.warning("%s", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
