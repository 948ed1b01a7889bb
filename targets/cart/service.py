"""Run the cart service: `python -m targets.cart.service --postgres DSN --redis URL --port P`.

Prepares the database (schema, catalogue) and the event topic once, then serves with uvicorn
(uvloop + httptools), optionally with several worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import uvicorn

from targets.cart import catalogue, db
from targets.cart.config import ServiceConfig
from targets.cart.server import CoalescingHttpToolsProtocol


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m targets.cart.service", description=__doc__)
    ap.add_argument("--postgres", required=True, help="PostgreSQL DSN")
    ap.add_argument("--redis", required=True, help="Redis URL")
    ap.add_argument("--kafka", default=None, help="Kafka bootstrap servers (needed for --mode async)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--mode", choices=("sync", "async"), default="sync")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--snapshot-every", type=int, default=50)
    ap.add_argument("--cache-ttl", type=int, default=300)
    ap.add_argument("--cache-prefix", default="cart:")
    ap.add_argument("--max-retries", type=int, default=5)
    ap.add_argument("--pool-size", type=int, default=10)
    ap.add_argument("--topic", default="cart-events")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument(
        "--aggregate-cache",
        type=int,
        default=None,
        help="carts kept in process after a write (default: 100000 with one worker, else 0)",
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
        aggregate_cache=args.aggregate_cache
        if args.aggregate_cache is not None
        else (100_000 if args.workers == 1 else 0),
    )
    asyncio.run(prepare(config, args.partitions))
    config.to_env()
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
    )


if __name__ == "__main__":
    main()
