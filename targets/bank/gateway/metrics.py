"""Prometheus metrics of the gateway (one registry per process).

The hub's per-message counts are plain integers on the hub, turned into counters only when
/metrics is scraped (`HubCollector`): a prometheus_client `Counter.inc` takes a lock, and the
fan-out path runs once per delivered message.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from targets.bank.gateway.hub import Hub

REGISTRY = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "gateway_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=REGISTRY
)
HTTP_SECONDS = Histogram(
    "gateway_http_request_seconds",
    "Time to answer an HTTP request, backend included",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
BACKEND_ERRORS = Counter(
    "gateway_backend_errors", "Backend requests that got no answer (timeout, refused, reset)", ["service", "kind"],
    registry=REGISTRY,
)
SIMULATIONS = Counter("gateway_simulation_runs", "Simulation runs by how they ended", ["result"], registry=REGISTRY)
SIMULATION_ACTIVE = Gauge("gateway_simulation_active", "1 while a simulation run is in progress", registry=REGISTRY)


class HubCollector(Collector):
    """Reads the hub's and the streamer's running totals at scrape time."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def collect(self) -> Iterator[Metric]:
        s = self.hub.stats
        clients = GaugeMetricFamily("gateway_ws_clients", "Connected WebSocket clients")
        clients.add_metric([], len(self.hub.clients))
        yield clients
        yield _counter("gateway_ws_connections", "WebSocket connections accepted", s.connections)
        yield _counter("gateway_ws_messages_delivered", "Messages written to a client's socket", s.delivered)
        yield _counter("gateway_ws_messages_queued", "Messages put in a client's send queue", s.queued)
        dropped = CounterMetricFamily(
            "gateway_ws_clients_dropped", "Clients closed by the gateway, by reason", labels=["reason"]
        )
        for reason, n in sorted(s.dropped.items()):
            dropped.add_metric([reason], n)
        yield dropped
        undelivered = CounterMetricFamily(
            "gateway_ws_messages_undelivered",
            "Messages meant for a client that were never written: its queue when it was dropped or left",
            labels=["reason"],
        )
        for reason, n in sorted(s.undelivered.items()):
            undelivered.add_metric([reason], n)
        yield undelivered
        records = CounterMetricFamily("gateway_kafka_records", "Records read from the event topics", labels=["topic"])
        for topic, n in sorted(s.records.items()):
            records.add_metric([topic], n)
        yield records
        undecodable = CounterMetricFamily(
            "gateway_kafka_undecodable", "Records that could not be decoded (not streamed)", labels=["reason"]
        )
        for reason, n in sorted(s.undecodable.items()):
            undecodable.add_metric([reason], n)
        yield undecodable
        yield _counter("gateway_ws_client_errors", "Client messages refused (bad JSON, unknown action or topic)",
                       s.client_errors)


def _counter(name: str, doc: str, value: int) -> CounterMetricFamily:
    c = CounterMetricFamily(name, doc)
    c.add_metric([], value)
    return c
