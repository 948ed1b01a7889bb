"""The HTTP API as a plain ASGI application (no framework: see routing.py).

Commands go through the command bus, queries through the cache; every expected outcome
arrives as a Result and maps to a status code with a readable JSON body. Admission is
bounded: past `max_inflight` requests in progress in this worker, a request is answered 503
with Retry-After at once, so an overloaded service sheds load instead of letting every
request's latency grow into the clients' timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from targets.cart import catalogue as catalogue_mod
from targets.cart import db
from targets.cart.asgi import (
    BodyTimeout,
    BodyTooLarge,
    Receive,
    Send,
    etag,
    header,
    read_body,
    respond,
    respond_json,
)
from targets.cart.bus import Accepted, CommandBus, CommandHandler
from targets.cart.cache import CartCache
from targets.cart.commands import (
    AddItem,
    ClearCart,
    RemoveItem,
    UpdateQuantity,
    add_item,
    clear_cart,
    remove_item,
    rules,
    update_quantity,
)
from targets.cart.config import ServiceConfig
from targets.cart.db import Pool
from targets.cart.domain import Cart
from targets.cart.health import check_all
from targets.cart.metrics import Metrics
from targets.cart.process import die_with_parent
from targets.cart.projector import Projector
from targets.cart.queries import CartQueries
from targets.cart.relay import OutboxRelay
from targets.cart.resp import LeanRedis
from targets.cart.result import Err, Ok, Problem, Result
from targets.cart.routing import match
from targets.cart.store import Appended, EventStore

log = logging.getLogger(__name__)


def _problem_body(p: Problem) -> bytes:
    return orjson.dumps(p.body())


_OVERLOADED = orjson.dumps({"error": "overloaded", "message": "too many requests in progress; retry after 1 s"})
_RETRY_AFTER = [(b"retry-after", b"1")]
_CLOSE = [(b"connection", b"close")]
_ADMITTED_ALWAYS = frozenset({"health", "metrics"})  # probes must see an overloaded service as up


class CartApp:
    """ASGI app; resources are opened in the lifespan startup of each server worker."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.pool: Pool | None = None
        self.redis: LeanRedis | None = None
        self.inflight = 0
        self.producer: AIOKafkaProducer | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.bus = CommandBus()
        self.catalogue: dict[str, catalogue_mod.Product] = {}
        self.products: list[dict[str, Any]] = []
        self._by_route: dict[str, tuple[Any, Any]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    async def startup(self) -> None:
        die_with_parent()  # a worker forked by the server's supervisor goes with it
        c = self.config
        self.pool = await db.create_pool(c.postgres, c.pool_size)
        self.redis = LeanRedis(c.redis)
        await self.redis.ping()
        self.catalogue = await db.load_catalogue(self.pool)
        self.products = [
            {"productId": p.product_id, "name": p.name, "price": p.price_cents}
            for p in sorted(self.catalogue.values(), key=lambda p: p.product_id)
        ]
        sync = c.mode == "sync"
        self.store = EventStore(
            self.pool, project=sync, snapshot_every=c.snapshot_every, cache_aggregates=c.aggregate_cache
        )
        self.cache = CartCache(self.redis, c.cache_prefix, c.cache_ttl_s)
        self.queries = CartQueries(self.store, self.cache, self.metrics)
        on_appended = self._publish if sync else None
        for ctype, decide in (
            (AddItem, add_item.decide),
            (RemoveItem, remove_item.decide),
            (UpdateQuantity, update_quantity.decide),
            (ClearCart, clear_cart.decide),
        ):
            self.bus.register(ctype, CommandHandler(self.store, self.catalogue, decide, on_appended, c.max_retries))
        if not sync:
            await self._start_async_pipeline()
        # A full garbage collection scans every object, cached carts included: ~20 ms for 30,000
        # carts here, a pause every request in flight waits for. Leave the startup heap out of
        # it and make full collections rare (young ones stay as frequent; nothing here makes
        # long-lived cycles).
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 20, 100)

    async def _start_async_pipeline(self) -> None:
        c = self.config
        assert c.kafka and self.pool is not None
        self.producer = AIOKafkaProducer(bootstrap_servers=c.kafka, enable_idempotence=False, linger_ms=0)
        await self.producer.start()
        self.consumer = AIOKafkaConsumer(
            c.topic,
            bootstrap_servers=c.kafka,
            group_id=c.projector_group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=5,  # the broker may hold a fetch for this long: it bounds projection lag
        )
        await self.consumer.start()
        relay = OutboxRelay(self.pool, self.producer, c.topic, self.metrics)
        projector = Projector(self.pool, self.cache, self.consumer, self.metrics)
        self.tasks = [asyncio.create_task(relay.run()), asyncio.create_task(projector.run())]

    async def shutdown(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for closer in (
            self.consumer.stop if self.consumer else None,
            self.producer.stop if self.producer else None,
            self.redis.aclose if self.redis else None,
            self.pool.close if self.pool else None,
        ):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()

    async def _publish(self, cart: Cart, appended: Appended) -> None:
        """Sync mode: put the new version in the cache before the write is acknowledged."""
        await self.cache.put(cart.cart_id, cart.version, appended.view, orjson.dumps(cart.summary()))

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        m = match(scope["method"], scope["path"])
        if m.route is None:
            code = "not_found" if m.status == 404 else "method_not_allowed"
            msg = f"no route {scope['method']} {scope['path']}"
            await respond_json(send, m.status, {"error": code, "message": msg})
            return
        if self.inflight >= self.config.max_inflight and m.route not in _ADMITTED_ALWAYS:
            self.metrics.rejected.inc()
            await respond(send, 503, _OVERLOADED, extra=_RETRY_AFTER)
            return
        started = time.perf_counter()
        handler: Callable[..., Any] = getattr(self, "r_" + m.route)
        self.inflight += 1
        try:
            status = await handler(scope, receive, send, *m.params)
        finally:
            self.inflight -= 1
        count, duration = self._route_metrics(m.route)
        count.inc()
        duration.observe(time.perf_counter() - started)
        if status >= 400:
            self.metrics.errors.labels(m.route, str(status)).inc()

    def _route_metrics(self, route: str) -> tuple[Any, Any]:
        """Labelled children resolved once per route (a label lookup per request costs more)."""
        found = self._by_route.get(route)
        if found is None:
            found = self._by_route[route] = (
                self.metrics.operations.labels(route),
                self.metrics.duration.labels(route),
            )
        return found

    # -- commands --------------------------------------------------------------------------
    async def _body(self, scope: dict[str, Any], receive: Receive, send: Send) -> Result[Any, Problem]:
        try:
            raw = await read_body(scope, receive, self.config.max_body_bytes, self.config.body_timeout_s)
        except BodyTooLarge:
            return Err(Problem(413, "body_too_large", f"request body exceeds {self.config.max_body_bytes} bytes"))
        except BodyTimeout:
            message = f"request body not received within {self.config.body_timeout_s:g} s"
            return Err(Problem(408, "request_timeout", message))
        try:
            return Ok(orjson.loads(raw))
        except orjson.JSONDecodeError as exc:
            return Err(
                Problem(
                    422,
                    "malformed_json",
                    f"request body is not valid JSON: {exc}",
                    [{"field": "body", "message": "expected a JSON object"}],
                )
            )

    def _expected(self, scope: dict[str, Any]) -> Result[int | None, Problem]:
        return rules.expected_version(header(scope, b"if-match"))

    async def _run(self, send: Send, command: Result[Any, Problem], status: int = 200) -> int:
        if isinstance(command, Err):
            return await self._fail(send, command.error)
        outcome = await self.bus.execute(command.value)
        if isinstance(outcome, Err):
            return await self._fail(send, outcome.error)
        accepted: Accepted = outcome.value
        if accepted.retries:
            self.metrics.conflict_retries.inc(accepted.retries)
        # the view as stored and cached, plus the event's type: {...,"event":"CartItemAdded"}
        body = accepted.view[:-1] + b',"event":"' + accepted.event.type.encode() + b'"}'
        await respond(send, status, body, extra=[etag(accepted.cart.version)])
        return status

    async def _fail(self, send: Send, problem: Problem) -> int:
        if problem.status == 409:
            extra = [etag(problem.extra["currentVersion"])]
        else:
            extra = _CLOSE if problem.status == 408 else []  # the rest of that body never came
        await respond(send, problem.status, _problem_body(problem), extra=extra)
        return problem.status

    async def _command_with_body(
        self, scope: dict[str, Any], receive: Receive, send: Send, build: Callable[[Any, int | None], Any]
    ) -> int:
        body = await self._body(scope, receive, send)
        if isinstance(body, Err):
            return await self._fail(send, body.error)
        expected = self._expected(scope)
        if isinstance(expected, Err):
            return await self._fail(send, expected.error)
        return await self._run(send, build(body.value, expected.value))

    async def r_add_item(self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str) -> int:
        return await self._command_with_body(
            scope, receive, send, lambda b, e: add_item.validate(cart_id, b, self.catalogue, e)
        )

    async def r_update_quantity(
        self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str, product_id: str
    ) -> int:
        return await self._command_with_body(
            scope,
            receive,
            send,
            lambda b, e: update_quantity.validate(cart_id, product_id, b, self.catalogue, e),
        )

    async def r_remove_item(
        self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str, product_id: str
    ) -> int:
        expected = self._expected(scope)
        if isinstance(expected, Err):
            return await self._fail(send, expected.error)
        return await self._run(send, remove_item.validate(cart_id, product_id, self.catalogue, expected.value))

    async def r_clear_cart(self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str) -> int:
        expected = self._expected(scope)
        if isinstance(expected, Err):
            return await self._fail(send, expected.error)
        return await self._run(send, clear_cart.validate(cart_id, expected.value))

    # -- queries ---------------------------------------------------------------------------
    async def _answer(self, send: Send, answer: Result[bytes, Problem]) -> int:
        if isinstance(answer, Err):
            return await self._fail(send, answer.error)
        await respond(send, 200, answer.value)
        return 200

    async def r_get_cart(self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str) -> int:
        cid = rules.cart_id(cart_id)
        if isinstance(cid, Err):
            return await self._fail(send, cid.error)
        return await self._answer(send, await self.queries.cart(cid.value))

    async def r_get_summary(self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str) -> int:
        cid = rules.cart_id(cart_id)
        if isinstance(cid, Err):
            return await self._fail(send, cid.error)
        return await self._answer(send, await self.queries.cart(cid.value, summary=True))

    async def r_get_history(self, scope: dict[str, Any], receive: Receive, send: Send, cart_id: str) -> int:
        cid = rules.cart_id(cart_id)
        if isinstance(cid, Err):
            return await self._fail(send, cid.error)
        return await self._answer(send, await self.queries.history(cid.value))

    async def r_list_products(self, scope: dict[str, Any], receive: Receive, send: Send) -> int:
        """One page of the catalogue: `?offset=0&limit=20` (limit at most 100)."""
        page = rules.page(scope["query_string"].decode("latin-1"))
        if isinstance(page, Err):
            return await self._fail(send, page.error)
        offset, limit = page.value
        items = self.products[offset : offset + limit]
        await respond_json(send, 200, {"items": items, "offset": offset, "limit": limit, "total": len(self.products)})
        return 200

    # -- operations ------------------------------------------------------------------------
    async def r_health(self, scope: dict[str, Any], receive: Receive, send: Send) -> int:
        assert self.pool is not None and self.redis is not None
        pool, redis = self.pool, self.redis

        async def database() -> None:
            await pool.fetchval("SELECT 1")

        async def cache() -> None:
            await redis.ping()

        async def event_bus() -> None:
            if self.producer is None:  # sync mode: the in-process command bus is the event bus
                if not self.bus.handlers():
                    raise RuntimeError("no command handlers registered")
                return
            await self.producer.client.fetch_all_metadata()

        report = await check_all({"database": database, "cache": cache, "eventBus": event_bus})
        status = 200 if report["status"] == "up" else 503
        await respond_json(send, status, report)
        return status

    async def r_metrics(self, scope: dict[str, Any], receive: Receive, send: Send) -> int:
        self.metrics.cache_hit_ratio.set(self.cache.hit_ratio())
        await respond(send, 200, generate_latest(self.metrics.registry), CONTENT_TYPE_LATEST.encode())
        return 200


def create_app() -> CartApp:
    """Factory for the server: configuration comes from the environment (see config.py)."""
    return CartApp(ServiceConfig.from_env())
