"""`python -m targets.bank.gateway`: wiring, command line, lifecycle.

Secrets come from the environment only: the PostgreSQL DSN (`EDABENCH_POSTGRES_DSN`, for the
schema registry table and the simulation runs) and a registry URL with credentials
(`EDABENCH_SCHEMA_REGISTRY_URL`). Nothing secret is accepted on the command line, which `ps` shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import uvicorn

from targets.bank.avro import Decoder
from targets.bank.db import ENV_DSN
from targets.bank.gateway.app import Gateway
from targets.bank.gateway.hub import Hub
from targets.bank.gateway.proxy import Backend
from targets.bank.gateway.simulation import DEFAULT_SHAPE, SimConfig, Simulator
from targets.bank.gateway.streamer import KafkaStreamer
from targets.bank.gateway.web import Cors
from targets.bank.registry import make_registry
from targets.bank.retry import Stopping, is_transient, until_done
from targets.bank.topics import EVENT_TOPICS, Names

log = logging.getLogger("gateway")

DEFAULT_ORIGINS = "http://localhost:5173,http://127.0.0.1:5173"  # the seed's web UI in development


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the gateway owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m targets.bank.gateway", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--bank-api", default="", help="bank REST API base URL(s), comma-separated (round robin)")
    p.add_argument("--kafka", required=True, help="bootstrap servers, host:port")
    p.add_argument("--namespace", default="", help="the bank pipeline's namespace ('' = the seed's topic names)")
    p.add_argument("--bank-group", default=None, help="the pipeline's consumer group (simulation runs gauge its lag)")
    p.add_argument("--cors-origins", default=DEFAULT_ORIGINS, help="allowed browser origins, comma-separated; '*': any")
    p.add_argument("--backend-timeout-s", type=float, default=5.0, help="a backend slower than this is a 503")
    p.add_argument("--health-timeout-s", type=float, default=2.0)
    p.add_argument("--ws-queue", type=int, default=1000, help="messages queued per client before it is dropped")
    p.add_argument("--ws-close-wait-s", type=float, default=10.0,
                   help="how long a dropped client's close frame may wait behind its unread data")
    p.add_argument("--ws-ping-interval-s", type=float, default=20.0)
    p.add_argument("--fetch-wait-ms", type=int, default=5, help="Kafka fetch wait: the floor of event -> hub latency")
    p.add_argument("--runs-root", type=Path, default=Path("runs"), help="where simulation runs write their results")
    p.add_argument("--simulation-shape", type=Path, default=DEFAULT_SHAPE, help="spec whose shape simulations take")
    p.add_argument("--max-rate", type=float, default=20_000.0, help="highest rate a simulation may ask for")
    p.add_argument("--max-duration-s", type=float, default=24 * 3600.0)
    p.add_argument("--no-simulation", action="store_true", help="serve no simulation API (503)")
    p.add_argument("--no-access-log", action="store_true")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    args.dsn = os.environ.get(ENV_DSN, "")
    if not args.dsn:
        p.error(f"no PostgreSQL DSN: set {ENV_DSN} (secrets are read from the environment only)")
    try:
        args.names = Names(args.namespace)
    except ValueError as exc:
        p.error(str(exc))
    args.bank_urls = [u.strip() for u in args.bank_api.split(",") if u.strip()]
    if args.ws_queue < 1:
        p.error("--ws-queue must be at least 1")
    return args


async def serve(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def connect() -> asyncpg.Pool:
        return await asyncpg.create_pool(args.dsn, min_size=1, max_size=2, command_timeout=10)

    pool = await until_done(connect, stop, "connecting to PostgreSQL", record_error=lambda e: not is_transient(e))
    registry = make_registry(pool)
    session = aiohttp.ClientSession(auto_decompress=False, connector=aiohttp.TCPConnector(limit=256))
    hub = Hub(EVENT_TOPICS.values(), queue_limit=args.ws_queue)
    streamer = KafkaStreamer(args.kafka, args.names, hub, Decoder(registry), fetch_wait_ms=args.fetch_wait_ms)
    simulator = None
    if not args.no_simulation:
        simulator = Simulator(SimConfig(kafka=args.kafka, dsn=args.dsn, namespace=args.namespace,
                                        runs_root=args.runs_root, group=args.bank_group, shape=args.simulation_shape,
                                        max_rate=args.max_rate, max_duration_s=args.max_duration_s))
    bancaire = None
    if args.bank_urls:
        bancaire = Backend("bancaire", args.bank_urls, session, args.backend_timeout_s,
                           prefix="/api/v1/bancaire/", target_prefix="/api/v1/")

    async def postgres_check() -> str:
        await pool.fetchval("SELECT 1")
        return "connected"

    app = Gateway(hub, bancaire, simulator, Cors(args.cors_origins.split(",")), streamer=streamer,
                  postgres_check=postgres_check, health_timeout_s=args.health_timeout_s,
                  access_log=not args.no_access_log, close_wait_s=args.ws_close_wait_s)
    server = _Server(uvicorn.Config(
        app, host=args.host, port=args.port, lifespan="off", access_log=False, log_level="warning",
        ws="websockets-sansio", ws_per_message_deflate=False, ws_max_size=1 << 16,
        ws_ping_interval=args.ws_ping_interval_s, ws_ping_timeout=args.ws_ping_interval_s,
        timeout_graceful_shutdown=5))
    tasks = [asyncio.create_task(_supervised(streamer), name="kafka streamer"),
             asyncio.create_task(server.serve(), name="http server")]
    stopper = asyncio.create_task(stop.wait())
    log.info("gateway on http://%s:%d: bank API %s, namespace %r, kafka %s", args.host, args.port,
             args.bank_urls or "none", args.namespace, args.kafka)
    try:
        await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        log.info("gateway stopping")
        stopper.cancel()
        if simulator is not None:
            await simulator.close()
        server.should_exit = True
        tasks[0].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for t, res in zip(tasks, results, strict=True):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                log.error("%s failed: %r", t.get_name(), res)
        await session.close()
        await registry.close()
        await pool.close()


async def _supervised(streamer: KafkaStreamer) -> None:
    """The streamer, restarted after a failure (a broker restart must not end the WebSocket feed)."""
    delay = 0.5
    while True:
        try:
            await streamer.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            streamer.state = f"failed: {type(exc).__name__}: {exc}"
            log.exception("kafka streamer failed; restarting in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(args))
    except Stopping as exc:  # asked to stop before the database ever answered
        log.warning("%s", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
