"""Prometheus metrics of the bancaire service (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

REGISTRY = CollectorRegistry()

#: which run this instance serves: its namespace, PostgreSQL schema and consumer group
SERVICE = Info("bancaire_service", "The run this instance serves (namespace, schema, group)", registry=REGISTRY)
#: `topic` is the seed's name of the topic (no namespace prefix), so series keep their names across runs
CONSUMED = Counter("bancaire_events_consumed", "Records consumed", ["topic"], registry=REGISTRY)
APPLIED = Counter("bancaire_events_applied", "Events applied to the ledger", ["event"], registry=REGISTRY)
DUPLICATES = Counter("bancaire_events_duplicate", "Events already processed (no effect)", registry=REGISTRY)
REJECTED = Counter("bancaire_events_rejected", "Events rejected by a business rule", ["reason"], registry=REGISTRY)
DLQ = Counter("bancaire_events_dlq", "Records sent to the dead-letter topic", ["reason"], registry=REGISTRY)
BATCH_SIZE = Histogram(
    "bancaire_batch_size",
    "Records per applied batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "bancaire_batch_seconds",
    "Time to apply one batch (decode, DB transaction, outcomes, commit)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "bancaire_stage_seconds",
    "Time per batch in each stage: decode (+DLQ), db (one transaction), outcomes (delivered), commit",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
EVENT_LATENCY = Histogram(
    "bancaire_event_latency_seconds",
    "Event timestamp to DB commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
ASSIGNED = Gauge("bancaire_assigned_partitions", "Input partitions assigned to this instance", registry=REGISTRY)
