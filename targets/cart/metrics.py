"""Prometheus metrics named as in the seed's dashboard (cart_operations_total, ...)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.operations = Counter("cart_operations_total", "Cart operations", ["operation"], registry=r)
        self.errors = Counter("cart_errors_total", "Failed cart operations", ["operation", "code"], registry=r)
        self.duration = Histogram(
            "cart_operation_duration_seconds",
            "Server-side duration of cart operations",
            ["operation"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.rejected = Counter(
            "cart_rejected_total", "Requests answered 503 because too many were in progress", registry=r
        )
        self.conflict_retries = Counter(
            "cart_conflict_retries_total", "Appends retried after losing a version race", registry=r
        )
        self.cache_hits = Counter("cart_cache_hits_total", "Query cache hits", registry=r)
        self.cache_misses = Counter("cart_cache_misses_total", "Query cache misses", registry=r)
        self.cache_hit_ratio = Gauge("cart_cache_hit_ratio", "Query cache hit ratio since start", registry=r)
        self.projected = Counter("cart_projector_events_total", "Events applied by the projector", registry=r)
        self.relayed = Counter("cart_outbox_relayed_total", "Outbox rows published to the event bus", registry=r)
