"""CartDriver: the harness's handle on the cart service.

`start` launches the service (or uses `target_options.url`), `send` maps an op to one HTTP
request and completes synchronously with the status, `verify` checks that every cart this
driver wrote to has projection == replay of its events. In async mode a sample of accepted
writes is followed until the cached query shows them (read-your-writes lag).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import orjson

from harness.protocol import OK, DriverContext, Op, Result
from targets.cart.client import WRITE_KINDS, AiohttpClient, Http1Client, open_client, request_for
from targets.cart.domain import Cart, Event, replay
from targets.cart.process import ServiceProcess, free_port

RYW_METRIC = "read_your_writes_lag"  # write acknowledged -> cached query shows it
PROJECTION_METRIC = "projection_lag"  # write acknowledged -> projection row shows it
TOUCHED_MAX = 10_000  # carts remembered for verify() without ids
_ERRORS = {s: Result(error=f"http_{s}") for s in range(400, 600)}


def _version(etag: str | None) -> int | None:
    if not etag:
        return None
    raw = etag.removeprefix("W/").strip('"')
    return int(raw) if raw.isdigit() else None


class CartDriver:
    """Options (target_options): mode ("sync"|"async"), workers, port, url (use a running
    service), client ("http1"|"aiohttp"), connections, snapshot_every, pool_size, max_retries,
    ryw_sample, ryw_poll_ms, ryw_timeout_s, cache_prefix, cache_ttl_s (default 300, the seed's 5
    minutes); for the service: server
    ("uvicorn"|"granian"), max_inflight (per worker, then 503), body_timeout_s (then 408)."""

    name: ClassVar[str] = "cart"
    needs: ClassVar[tuple[str, ...]] = ("postgres", "redis")

    @classmethod
    def needs_for(cls, options: dict[str, Any]) -> tuple[str, ...]:
        """Kafka only in async mode (the outbox relay and the projector use it)."""
        return (*cls.needs, "kafka") if options.get("mode", "sync") == "async" else cls.needs

    def __init__(self) -> None:
        self.ctx: DriverContext | None = None
        self.service: ServiceProcess | None = None
        self.client: Http1Client | AiohttpClient | None = None
        self.base_url = ""
        self.mode = "sync"
        # carts written, newest last, for verify() without ids (a workload passes its own): bounded,
        # so that a soak's memory does not grow with the number of carts it made
        self.touched: OrderedDict[str, None] = OrderedDict()
        self._db: asyncpg.Pool | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._gauges: asyncio.Task[None] | None = None
        self._rng = random.Random(0)
        self.ryw_sample = 0.0
        self.ryw_timeout_s = 10.0
        self.ryw_max_probes = 256
        self.ryw_poll_s = 0.002
        self._pending: dict[str, tuple[int, int]] = {}  # cart -> (version awaited, acknowledged at ns)
        self.ryw_timeouts = 0
        self.rejected = 0  # answers 503 (admission bound), cumulative

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, ctx: DriverContext) -> None:
        self.ctx = ctx
        o = ctx.options
        self.mode = o.get("mode", "sync")
        self.ryw_sample = float(o.get("ryw_sample", 0.05 if self.mode == "async" else 0.0))
        self.ryw_timeout_s = float(o.get("ryw_timeout_s", 10.0))
        self.ryw_poll_s = float(o.get("ryw_poll_ms", 2)) / 1000
        self._rng = random.Random(ctx.process_index)
        if o.get("url"):
            self.base_url = str(o["url"]).rstrip("/")
        else:
            await self._start_service(ctx)
        self.client = open_client(self.base_url, int(o.get("connections", 64)), str(o.get("client", "http1")))
        if "postgres" in ctx.services or o.get("postgres"):
            self._db = await asyncpg.create_pool(o.get("postgres") or ctx.services["postgres"], min_size=1, max_size=4)
        self._gauges = asyncio.create_task(self._sample_gauges())
        if self.ryw_sample and self._db is not None:
            self._probes.add(asyncio.create_task(self._poll_projections()))

    async def _start_service(self, ctx: DriverContext) -> None:
        """Used when no `launch` ran (a driver used on its own, e.g. in tests)."""
        self.service, self.base_url = await _spawn(ctx.options, ctx.services, ctx.run_dir, ctx.process_index)

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(
        cls, options: dict[str, Any], services: dict[str, str], run_dir: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        """Start one service for the whole run (all generator processes share it)."""
        if options.get("url"):
            yield {}
            return
        service, url = await _spawn(options, services, run_dir, 0)
        try:
            assert service.proc is not None
            yield {"url": url, "pids": {"cart-service": service.proc.pid}}
        finally:
            await asyncio.to_thread(service.stop)

    async def stop(self) -> None:
        for task in [*self._probes, *([self._gauges] if self._gauges else [])]:
            task.cancel()
        for task in [*self._probes, *([self._gauges] if self._gauges else [])]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._probes.clear()
        self._gauges = None
        if self.client is not None:
            await self.client.close()
            self.client = None
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self.service is not None:
            await asyncio.to_thread(self.service.stop)
            self.service = None

    # -- ops -------------------------------------------------------------------------------
    async def send(self, op: Op) -> Result:
        assert self.client is not None
        payload: dict[str, Any] = op.payload or {}
        method, path, body = request_for(op.kind, payload)
        if_match = payload.get("if_match")
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
        status, data, etag = await self.client.call(method, path, body, headers)
        done = time.monotonic_ns()
        if op.kind in WRITE_KINDS:
            touched = self.touched
            touched[payload["cart"]] = None
            touched.move_to_end(payload["cart"])
            if len(touched) > TOUCHED_MAX:
                touched.popitem(last=False)
            payload["version"] = _version(etag)  # fed back to the workload through the op
            if status < 300 and self.ryw_sample and self._rng.random() < self.ryw_sample:
                self._probe(payload["cart"], payload["version"] or 0, done)
        elif status == 200 and op.kind in ("view", "summary"):
            payload["version"] = orjson.loads(data)["version"]
        if status == 409:
            payload["current_version"] = _version(etag)
        if status >= 300:
            if status == 503:
                self.rejected += 1  # shed by the service's admission bound: a gauge per second
            return _ERRORS.get(status) or Result(error=f"http_{status}")
        return OK

    # -- read-your-writes lag --------------------------------------------------------------
    def _probe(self, cart_id: str, version: int, since_ns: int) -> None:
        if cart_id not in self._pending and len(self._pending) < self.ryw_max_probes:
            self._pending[cart_id] = (version, since_ns)

    async def _poll_projections(self) -> None:
        """One cheap batched query every `ryw_poll_s` for all followed writes; when the projection
        shows a write, confirm through the cached query (one GET, usually) and report both lags."""
        assert self._db is not None and self.ctx is not None
        while True:
            await asyncio.sleep(self.ryw_poll_s)
            if not self._pending:
                continue
            rows = await self._db.fetch(
                "SELECT user_id::text, version FROM cart_projections WHERE user_id = ANY($1::uuid[])",
                list(self._pending),
            )
            now = time.monotonic_ns()
            for cart_id, version in rows:
                want, since = self._pending.get(cart_id, (None, 0))
                if want is not None and version >= want:
                    del self._pending[cart_id]
                    self.ctx.completions.observe(PROJECTION_METRIC, max(1, (now - since) // 1000))
                    task = asyncio.create_task(self._confirm(cart_id, want, since))
                    self._probes.add(task)
                    task.add_done_callback(self._probes.discard)
            deadline = now - int(self.ryw_timeout_s * 1e9)
            for cart_id in [c for c, (_, since) in self._pending.items() if since < deadline]:
                del self._pending[cart_id]
                self.ryw_timeouts += 1
                self.ctx.completions.gauge("cart_ryw_timeouts", self.ryw_timeouts)

    async def _confirm(self, cart_id: str, version: int, since_ns: int) -> None:
        """Poll the cached summary query until it shows `version`; report the lag in µs."""
        assert self.client is not None and self.ctx is not None
        deadline = since_ns + int(self.ryw_timeout_s * 1e9)
        while time.monotonic_ns() < deadline:
            status, data, _ = await self.client.call("GET", f"/api/carts/{cart_id}/summary")
            if status == 200 and orjson.loads(data)["version"] >= version:
                self.ctx.completions.observe(RYW_METRIC, max(1, (time.monotonic_ns() - since_ns) // 1000))
                return
            await asyncio.sleep(self.ryw_poll_s)
        self.ryw_timeouts += 1
        self.ctx.completions.gauge("cart_ryw_timeouts", self.ryw_timeouts)

    async def _sample_gauges(self) -> None:
        """Once a second: the service's cache hit ratio, as a gauge in the run's timeseries."""
        assert self.client is not None and self.ctx is not None
        while True:
            await asyncio.sleep(1.0)
            self.ctx.completions.gauge("cart_rejected", self.rejected)
            with contextlib.suppress(Exception):
                status, data, _ = await self.client.call("GET", "/metrics")
                if status == 200:
                    for line in data.decode().splitlines():
                        if line.startswith("cart_cache_hit_ratio "):
                            self.ctx.completions.gauge("cart_cache_hit_ratio", float(line.split()[1]))

    # -- state, for verification -----------------------------------------------------------
    async def events(self, cart_id: str) -> list[dict[str, Any]]:
        """The cart's stored events in version order, as {type, version, data}."""
        assert self._db is not None
        rows = await self._db.fetch(
            "SELECT event_type, event_version, event_data::text FROM domain_events "
            "WHERE aggregate_id = $1 ORDER BY event_version",
            cart_id,
        )
        return [{"type": r[0], "version": r[1], "data": orjson.loads(r[2])} for r in rows]

    async def projection(self, cart_id: str) -> dict[str, Any] | None:
        assert self._db is not None
        raw = await self._db.fetchval("SELECT cart_data::text FROM cart_projections WHERE user_id = $1", cart_id)
        return orjson.loads(raw) if raw is not None else None

    async def snapshot(self, cart_id: str) -> dict[str, Any] | None:
        assert self._db is not None
        raw = await self._db.fetchval(
            "SELECT aggregate_data::text FROM cart_snapshots WHERE aggregate_id = $1", cart_id
        )
        return orjson.loads(raw) if raw is not None else None

    async def get(self, path: str) -> tuple[int, Any]:
        assert self.client is not None
        status, data, _ = await self.client.call("GET", path)
        return status, orjson.loads(data) if data else None

    async def wait_projected(self, cart_ids: set[str], timeout_s: float = 30.0) -> list[str]:
        """Async mode: wait until every projection reached its last event; return the laggards."""
        assert self._db is not None
        deadline = time.monotonic() + timeout_s
        ids = sorted(cart_ids)
        while True:
            rows = await self._db.fetch(
                "SELECT e.aggregate_id::text FROM (SELECT aggregate_id, max(event_version) v FROM domain_events "
                "WHERE aggregate_id = ANY($1::uuid[]) GROUP BY aggregate_id) e "
                "LEFT JOIN cart_projections p ON p.user_id = e.aggregate_id "
                "WHERE p.version IS DISTINCT FROM e.v",
                ids,
            )
            behind = [r[0] for r in rows]
            if not behind or time.monotonic() > deadline:
                return behind
            await asyncio.sleep(0.1)

    async def fetch_state(
        self, cart_ids: Iterable[str], chunk: int = 2000
    ) -> dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]]:
        """Per cart: (events in version order, projection, snapshot), read in a few batched queries."""
        assert self._db is not None
        ids = sorted(set(cart_ids))
        out: dict[str, tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]] = {}
        for i in range(0, len(ids), chunk):
            part = ids[i : i + chunk]
            events: dict[str, list[dict[str, Any]]] = {c: [] for c in part}
            for cid, etype, version, data in await self._db.fetch(
                "SELECT aggregate_id::text, event_type, event_version, event_data::text FROM domain_events "
                "WHERE aggregate_id = ANY($1::uuid[]) ORDER BY aggregate_id, event_version",
                part,
            ):
                events[cid].append({"type": etype, "version": version, "data": orjson.loads(data)})
            projections = {
                r[0]: orjson.loads(r[1])
                for r in await self._db.fetch(
                    "SELECT user_id::text, cart_data::text FROM cart_projections WHERE user_id = ANY($1::uuid[])",
                    part,
                )
            }
            snapshots = {
                r[0]: orjson.loads(r[1])
                for r in await self._db.fetch(
                    "SELECT aggregate_id::text, aggregate_data::text FROM cart_snapshots "
                    "WHERE aggregate_id = ANY($1::uuid[])",
                    part,
                )
            }
            for cid in part:
                out[cid] = (events[cid], projections.get(cid), snapshots.get(cid))
        return out

    async def verify(self, cart_ids: Iterable[str] | None = None) -> list[str]:
        """Per cart: versions 1..n, projection == replay of events, snapshot == replay to its version."""
        ids = set(cart_ids) if cart_ids is not None else set(self.touched)
        if self._db is None or not ids:
            return []
        problems = [f"cart {c}: projection still behind its events" for c in await self.wait_projected(ids)]
        for cart_id, (events, proj, snap) in (await self.fetch_state(ids)).items():
            cart = replay(cart_id, (Event(e["type"], e["data"]) for e in events))
            if [e["version"] for e in events] != list(range(1, len(events) + 1)):
                problems.append(f"cart {cart_id}: event versions are not 1..{len(events)}")
            if events and (proj is None or proj != cart.view()):
                problems.append(f"cart {cart_id}: projection {proj} != replay {cart.view()}")
            if snap is not None:
                upto = replay(cart_id, (Event(e["type"], e["data"]) for e in events[: snap["version"]]))
                if Cart.from_state(cart_id, snap).state() != upto.state():
                    problems.append(f"cart {cart_id}: snapshot v{snap['version']} != replay to that version")
        return problems


def service_args(options: dict[str, Any], services: dict[str, str], port: int) -> list[str]:
    """Command-line arguments of the service for these target options."""
    mode = options.get("mode", "sync")
    args = [
        "--postgres", options.get("postgres") or services["postgres"],
        "--redis", options.get("redis") or services["redis"],
        "--port", str(port),
        "--mode", mode,
        "--workers", str(options.get("workers", 1)),
        "--snapshot-every", str(options.get("snapshot_every", 50)),
        "--pool-size", str(options.get("pool_size", 10)),
        "--cache-prefix", str(options.get("cache_prefix", "cart:")),
        "--max-retries", str(options.get("max_retries", 5)),
        "--cache-ttl", str(options.get("cache_ttl_s", 300)),
    ]  # fmt: skip
    if options.get("aggregate_cache") is not None:
        args += ["--aggregate-cache", str(options["aggregate_cache"])]
    for key in ("server", "max_inflight", "body_timeout_s"):
        if options.get(key) is not None:
            args += ["--" + key.removesuffix("_s").replace("_", "-"), str(options[key])]
    if mode == "async":
        kafka = options.get("kafka") or services.get("kafka")
        if not kafka:
            raise RuntimeError("cart mode 'async' needs a Kafka bootstrap (services or target_options.kafka)")
        args += ["--kafka", kafka, "--topic", str(options.get("topic", "cart-events"))]
    return args


async def _spawn(
    options: dict[str, Any], services: dict[str, str], run_dir: str | None, index: int
) -> tuple[ServiceProcess, str]:
    port = int(options.get("port") or free_port())
    url = f"http://127.0.0.1:{port}"
    log = Path(run_dir) / "logs" / f"cart-service-{index}.log" if run_dir else None
    service = ServiceProcess(service_args(options, services, port), log)
    service.start()
    try:
        await service.wait_healthy(url, float(options.get("start_timeout_s", 90)))
    except BaseException:
        await asyncio.to_thread(service.stop)
        raise
    return service, url
