"""The gateway's ASGI app: routing, CORS, access log, /metrics, aggregated health, the WebSocket endpoint.

Raw ASGI like the bank API (`targets/bank/api.py`): a handful of routes do not need a framework,
and the WebSocket path stays a direct `send` into uvicorn's protocol, with nothing per message
in between.

Routes:
  /api/v1/bancaire/*    -> the bank REST API (`/api/v1/*` on its instances)
  /api/v1/simulation/*  -> start, stop, status of a simulation run
  /api/v1/health        -> the gateway and everything behind it
  /metrics              -> Prometheus
  /ws                   -> WebSocket: subscribe / unsubscribe to the bank's event topics
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from uvicorn.protocols.utils import ClientDisconnected

from targets.bank.gateway.hub import Client, Hub, UnknownTopics, control_message
from targets.bank.gateway.metrics import HTTP_REQUESTS, HTTP_SECONDS, REGISTRY, HubCollector
from targets.bank.gateway.proxy import Backend, probe
from targets.bank.gateway.simulation import BadRequest, Busy, NotRunning, Simulator
from targets.bank.gateway.streamer import KafkaStreamer
from targets.bank.gateway.web import (
    BodyTooLarge,
    Cors,
    Receive,
    Scope,
    Send,
    header,
    read_body,
    reply,
    reply_json,
    trace_for,
)

log = logging.getLogger(__name__)
access = logging.getLogger("gateway.access")

BANCAIRE = "/api/v1/bancaire/"
SIMULATION = "/api/v1/simulation/"
MAX_BODY = 1 << 20
#: the longest a dropped client's close frame may wait behind what its socket still holds
CLOSE_WAIT_S = 10.0


class Gateway:
    def __init__(self, hub: Hub, bancaire: Backend | None, simulator: Simulator | None, cors: Cors, *,
                 streamer: KafkaStreamer | None = None,
                 postgres_check: Callable[[], Awaitable[str]] | None = None,
                 health_timeout_s: float = 2.0, access_log: bool = True, close_wait_s: float = CLOSE_WAIT_S) -> None:
        self.hub = hub
        self.bancaire = bancaire
        self.simulator = simulator
        self.cors = cors
        self.streamer = streamer
        self.postgres_check = postgres_check
        self.health_timeout_s = health_timeout_s
        self.access_log = access_log
        self.close_wait_s = close_wait_s
        #: the hub's totals, read at scrape time (a registry per app: tests run several in one process)
        self.hub_metrics = CollectorRegistry()
        self.hub_metrics.register(HubCollector(hub))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)

    # ---- HTTP ------------------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        t0 = time.perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        route = _route(path)
        trace = trace_for(header(scope, b"traceparent"))
        origin = header(scope, b"origin")
        extra = [(b"traceparent", trace.header.encode()), *self.cors.headers(origin)]
        status = 500
        backend = ""
        try:
            if method == "OPTIONS" and header(scope, b"access-control-request-method") is not None:
                status, hdrs = self.cors.preflight(scope)
                if status == 204:
                    await send({"type": "http.response.start", "status": 204, "headers": hdrs})
                    await send({"type": "http.response.body", "body": b""})
                else:
                    await reply_json(send, 403, {"error": "origin_not_allowed", "origin": origin,
                                                 "detail": "this origin is not in the gateway's CORS origins"})
            elif route == "bancaire" and self.bancaire is not None:
                body = await read_body(receive, MAX_BODY) if method not in ("GET", "HEAD") else None
                status, backend = await self.bancaire.forward(scope, send, trace, body, extra)
            elif route == "simulation":
                status = await self._simulation(scope, receive, send, method, path[len(SIMULATION):], extra)
            elif path == "/api/v1/health":
                status = await self._health(send, extra)
            elif path == "/metrics":
                status = 200
                body = generate_latest(REGISTRY) + generate_latest(self.hub_metrics)
                await reply(send, 200, body, CONTENT_TYPE_LATEST.encode(), extra)
            else:
                status = 404
                await reply_json(send, 404, {"error": "not_found", "detail": f"no route for {method} {path}"}, extra)
        except BodyTooLarge as exc:
            status = 413
            await reply_json(send, 413, {"error": "body_too_large", "detail": str(exc)}, extra)
        finally:
            elapsed = time.perf_counter() - t0
            HTTP_REQUESTS.labels(route, method, str(status)).inc()
            HTTP_SECONDS.labels(route).observe(elapsed)
            if self.access_log:
                client = scope.get("client")
                access.info('%s "%s %s" %d %.1fms trace=%s%s', f"{client[0]}:{client[1]}" if client else "-", method,
                            path, status, elapsed * 1000, trace.trace_id, f" backend={backend}" if backend else "")

    async def _simulation(self, scope: Scope, receive: Receive, send: Send, method: str, action: str,
                          extra: list[tuple[bytes, bytes]]) -> int:
        sim = self.simulator
        if sim is None:
            return await _answer(send, 503, {"error": "service_unavailable", "service": "simulation",
                                             "detail": "this gateway has no simulation API configured"}, extra)
        allowed = {"start": "POST", "stop": "POST", "status": "GET"}
        if action not in allowed:
            return await _answer(send, 404, {"error": "not_found", "detail": f"no simulation action {action!r}; "
                                             "known: start (POST), stop (POST), status (GET)"}, extra)
        if method != allowed[action]:
            return await _answer(send, 405, {"error": "method_not_allowed",
                                             "detail": f"{action} takes {allowed[action]}"}, extra)
        try:
            if action == "start":
                return await _answer(send, 202, await sim.start(await read_body(receive, MAX_BODY)), extra)
            if action == "stop":
                return await _answer(send, 202, await sim.stop(), extra)
            return await _answer(send, 200, sim.status(), extra)
        except BadRequest as exc:
            return await _answer(send, 422, {"error": "validation_error", "detail": exc.detail}, extra)
        except Busy as exc:
            return await _answer(send, 409, {"error": "busy", "detail": str(exc), "status": sim.status()}, extra)
        except NotRunning as exc:
            return await _answer(send, 409, {"error": "not_running", "detail": str(exc), "status": sim.status()},
                                 extra)
        except Exception as exc:
            log.exception("simulation %s failed", action)
            return await _answer(send, 500, {"error": "simulation_failed", "detail": f"{type(exc).__name__}: {exc}",
                                             "status": sim.status()}, extra)

    async def _health(self, send: Send, extra: list[tuple[bytes, bytes]]) -> int:
        """200 when every service behind the gateway is healthy, else 503; the body says which is not."""
        checks: dict[str, Any] = {}
        healthy = True
        if self.bancaire is not None and self.bancaire.urls:
            probes = await asyncio.gather(*(probe(self.bancaire.session, u, self.health_timeout_s)
                                            for u in self.bancaire.urls))
            checks["bancaire"] = {"healthy": all(p["healthy"] for p in probes), "instances": probes}
            healthy &= checks["bancaire"]["healthy"]
        if self.streamer is not None:
            snap = self.streamer.snapshot()
            checks["kafka"] = {"healthy": snap["state"] == "streaming", **snap}
            healthy &= checks["kafka"]["healthy"]
        if self.postgres_check is not None:
            try:
                pg = await asyncio.wait_for(self.postgres_check(), self.health_timeout_s)
            except Exception as exc:
                pg = f"error: {type(exc).__name__}"
            checks["postgres"] = {"healthy": pg == "connected", "state": pg}
            healthy &= pg == "connected"
        if self.simulator is not None:
            st = self.simulator.status()
            checks["simulation"] = {"state": st["state"], "run_id": st["run_id"]}
        body = {"status": "healthy" if healthy else "unhealthy", "services": checks, "websocket": self.hub.snapshot()}
        return await _answer(send, 200 if healthy else 503, body, extra)

    # ---- WebSocket ---------------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        msg = await receive()
        if msg["type"] != "websocket.connect":
            return
        origin = header(scope, b"origin")
        if scope["path"] != "/ws" or (origin is not None and not self.cors.allowed(origin)):
            # before the handshake, a close is a 403 (a browser page of another origin, or a wrong path)
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "websocket.accept"})
        peer = scope.get("client")
        client = self.hub.new_client(f"{peer[0]}:{peer[1]}" if peer else "")
        self.hub.register(client)
        writer = asyncio.create_task(self._write_pump(client, send), name=f"ws writer {client.id}")
        client.on_close = writer.cancel
        try:
            while True:
                incoming = asyncio.ensure_future(receive())
                await asyncio.wait((incoming, writer), return_when=asyncio.FIRST_COMPLETED)
                if not incoming.done():
                    incoming.cancel()
                    break  # the writer ended: the client was dropped, or its socket failed
                m = incoming.result()
                if m["type"] == "websocket.disconnect":
                    break
                self._on_client_message(client, m.get("text") if m.get("text") is not None else m.get("bytes"))
        except ClientDisconnected:
            pass
        finally:
            if not writer.done():
                writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientDisconnected, OSError):
                await writer
            self.hub.unregister(client, "disconnected")  # a no-op for a dropped client, already gone
            if client.closing:
                await self._close(client, send)

    async def _close(self, client: Client, send: Send) -> None:
        """The dropped client's close frame, after what its socket still holds; given up after
        `close_wait_s` (a client that never reads again would hold the handler forever)."""
        log.warning("ws client %d (%s) dropped: %s (%d delivered)", client.id, client.peer, client.close_reason,
                    client.delivered)
        with contextlib.suppress(TimeoutError, ClientDisconnected, OSError, RuntimeError):
            await asyncio.wait_for(send({"type": "websocket.close", "code": client.close_code,
                                         "reason": client.close_reason}), self.close_wait_s)

    async def _write_pump(self, client: Client, send: Send) -> None:
        """Drain the client's queue to its socket. `send` returns at once while the socket takes
        data and waits while it is full: that wait is what lets a slow client's queue fill."""
        queue = client.queue
        wake = client.wake
        hub = self.hub
        n = 0
        try:
            while not client.closing:
                if not queue:
                    if n:
                        hub.delivered(client, n)
                        n = 0
                    wake.clear()
                    await wake.wait()
                    continue
                client.in_hand = 1
                await send({"type": "websocket.send", "text": queue.popleft()})
                client.in_hand = 0
                n += 1
        finally:
            if n:
                hub.delivered(client, n)

    def _on_client_message(self, client: Client, data: str | bytes | None) -> None:
        """{"action": "subscribe" | "unsubscribe", "topics": [...]}; answered with a status (the
        topics now subscribed) or an error, in order with the events."""
        try:
            msg = orjson.loads(data or b"")
        except orjson.JSONDecodeError as exc:
            self._client_error(client, "invalid_json", str(exc))
            return
        if not isinstance(msg, dict):
            self._client_error(client, "invalid_message", "a JSON object is expected")
            return
        action, topics = msg.get("action"), msg.get("topics")
        if action not in ("subscribe", "unsubscribe"):
            self._client_error(client, "unknown_action", f"action {action!r}: subscribe or unsubscribe")
            return
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            self._client_error(client, "invalid_topics", "topics must be a list of topic names")
            return
        try:
            now = (self.hub.subscribe if action == "subscribe" else self.hub.unsubscribe)(client, topics)
        except UnknownTopics as exc:
            self._client_error(client, "unknown_topic", str(exc), unknown=exc.unknown, known=sorted(self.hub.known))
            return
        client.control(control_message("status", action=action, topics=now))

    def _client_error(self, client: Client, error: str, detail: str, **more: Any) -> None:
        self.hub.stats.client_errors += 1
        client.control(control_message("error", error=error, detail=detail, **more))


def _route(path: str) -> str:
    """A low-cardinality label for metrics."""
    if path.startswith(BANCAIRE):
        return "bancaire"
    if path.startswith(SIMULATION):
        return "simulation"
    if path in ("/api/v1/health", "/metrics", "/ws"):
        return path.rsplit("/", 1)[-1]
    return "other"


async def _answer(send: Send, status: int, body: Any, extra: list[tuple[bytes, bytes]]) -> int:
    await reply_json(send, status, body, extra)
    return status

