"""Run the cart service: `python -m targets.cart.service --postgres DSN --redis URL --port P`.

Prepares the database (schema, catalogue) and the event topic once, then serves with uvicorn
(uvloop + httptools, default) or granian (`--server granian`), with `--workers N` processes
sharing the listening socket: the server's own supervisor forks them onto one socket and the
kernel spreads connections over them. Each worker dies with its supervisor (parent-death
signal), so a supervisor killed outright leaves no worker listening.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os

from targets.cart import catalogue, db
from targets.cart.config import ServiceConfig
from targets.cart.process import SUPERVISOR_ENV

SERVERS = ("uvicorn", "granian")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m targets.cart.service", description=__doc__)
    ap.add_argument("--postgres", required=True, help="PostgreSQL DSN")
    ap.add_argument("--redis", required=True, help="Redis URL")
    ap.add_argument("--kafka", default=None, help="Kafka bootstrap servers (needed for --mode async)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--mode", choices=("sync", "async"), default="sync")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--server",
        choices=SERVERS,
        default=os.environ.get("CART_HTTP_SERVER", "uvicorn"),
        help="HTTP server (default: $CART_HTTP_SERVER or uvicorn)",
    )
    ap.add_argument("--snapshot-every", type=int, default=50)
    ap.add_argument("--cache-ttl", type=int, default=300)
    ap.add_argument("--cache-prefix", default="cart:")
    ap.add_argument("--max-retries", type=int, default=5)
    ap.add_argument("--pool-size", type=int, default=10)
    ap.add_argument("--max-inflight", type=int, default=64, help="requests in progress per worker before 503")
    ap.add_argument("--body-timeout", type=float, default=10.0, help="seconds to receive a request body (408)")
    ap.add_argument("--topic", default="cart-events")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument(
        "--aggregate-cache",
        type=int,
        default=None,
        help="carts kept in process after a write (default: 20000 in sync mode or with one worker, else 0)",
    )
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args(argv)
    if args.mode == "async" and not args.kafka:
        ap.error("--mode async needs --kafka")
    return args


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()


async def prepare(config: ServiceConfig, partitions: int) -> None:
    await db.prepare(config.postgres, catalogue.build(config.catalogue_size))
    if config.mode == "async" and config.kafka:
        await _create_topic(config.kafka, config.topic, partitions)


def _aggregate_cache(args: argparse.Namespace) -> int:
    """Sync mode checks a cached cart inside the append itself (a stale one costs no extra round
    trip), so every worker keeps one; async mode finds staleness only by a refused insert."""
    if args.aggregate_cache is not None:
        return int(args.aggregate_cache)
    return 20_000 if args.mode == "sync" or args.workers == 1 else 0


def serve_uvicorn(args: argparse.Namespace) -> None:
    import uvicorn

    from targets.cart.server import CoalescingHttpToolsProtocol

    uvicorn.run(
        "targets.cart.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http=CoalescingHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        timeout_graceful_shutdown=5,
        timeout_keep_alive=75,  # load generators keep pools of idle connections: don't race their reuse
        proxy_headers=False,  # listens on loopback for a load generator: no proxy to trust, a wrapper less per request
        server_header=False,
    )


def serve_granian(args: argparse.Namespace) -> None:
    from granian import Granian
    from granian.constants import Interfaces, Loops, RuntimeModes
    from granian.http import HTTP1Settings

    Granian(
        "targets.cart.app:create_app",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        loop=Loops.uvloop,
        factory=True,
        log_access=False,
        log_level=args.log_level,
        http1_settings=HTTP1Settings(keep_alive=True),
        workers_kill_timeout=5,
        runtime_mode=RuntimeModes.st,
    ).serve()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    config = ServiceConfig(
        postgres=args.postgres,
        redis=args.redis,
        kafka=args.kafka,
        mode=args.mode,
        snapshot_every=args.snapshot_every,
        cache_ttl_s=args.cache_ttl,
        cache_prefix=args.cache_prefix,
        max_retries=args.max_retries,
        pool_size=args.pool_size,
        topic=args.topic,
        aggregate_cache=_aggregate_cache(args),
        max_inflight=args.max_inflight,
        body_timeout_s=args.body_timeout,
    )
    asyncio.run(prepare(config, args.partitions))
    config.to_env()
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    (serve_granian if args.server == "granian" else serve_uvicorn)(args)


if __name__ == "__main__":
    main()
