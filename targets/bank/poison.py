"""Poison records for chaos runs: one of every kind the ledger must send to the DLQ, never apply.

Each is what a real producer could emit: valid Avro in the Confluent wire format under a registered
schema id (only its values break the ledger), or bytes that are not a record at all. `reason` is
the `dlq-reason` header the service must give it. Chaos tests and scenarios send these mid-stream
and check the DLQ by the records' `edabench-op-id` header.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import fastavro
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from targets.bank.avro import frame, load_schema_text
from targets.bank.topics import H_OP_ID, SEED, Names


@dataclass(frozen=True, slots=True)
class Poison:
    kind: str  # what is wrong with it, for a person
    event: str  # the event type, hence the topic it is sent to
    key: str
    value: bytes | None
    reason: str  # the DLQ reason the service must give


def _encode(schema_id: int, event: str, record: dict[str, Any]) -> bytes:
    """Avro body without the writer's precision check: a decimal's bytes do not depend on the
    declared precision, so this is what any producer that skips the check would send."""
    schema = json.loads(load_schema_text(event))
    for f in schema["fields"]:
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "decimal":
            f["type"] = {**f["type"], "precision": 60}
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(schema), record)
    return frame(schema_id, buf.getvalue())


def records(ids: dict[str, int], tag: str) -> list[Poison]:
    """Every poison kind; `ids` maps event name -> registered schema id, `tag` makes ids unique."""
    ts = int(time.time() * 1000)
    acc = f"{tag}-P"

    def opening(n: int, **over: Any) -> dict[str, Any]:
        rec = {
            "event_id": f"{tag}-po-{n}",
            "timestamp": ts,
            "compte_id": f"{acc}{n}",
            "client_id": f"{tag}-K",
            "type_compte": "COURANT",
            "devise": "EUR",
            "solde_initial": Decimal("1.00"),
            "metadata": None,
        }
        return {**rec, **over}

    def deposit(n: int, **over: Any) -> dict[str, Any]:
        rec = {
            "event_id": f"{tag}-pd-{n}",
            "timestamp": ts,
            "compte_id": f"{acc}{n}",
            "montant": Decimal("1.00"),
            "devise": "EUR",
            "reference": "POISON",
            "canal": "CARTE",
            "metadata": None,
        }
        return {**rec, **over}

    valid: list[tuple[str, str, dict[str, Any], str]] = [
        ("event_id of 65 chars", "DepotEffectue", deposit(1, event_id="e" * 65), "too_long:event_id"),
        ("compte_id of 65 chars", "CompteOuvert", opening(2, compte_id="c" * 65), "too_long:compte_id"),
        ("reference of 101 chars", "DepotEffectue", deposit(3, reference="r" * 101), "too_long:reference"),
        ("5-letter devise", "CompteOuvert", opening(4, devise="EUROS"), "bad_currency:devise"),
        ("NUL in reference", "DepotEffectue", deposit(5, reference="PO\x00ISON"), "nul_char:reference"),
        (
            "NUMERIC(18,2) overflow",
            "CompteOuvert",
            opening(6, solde_initial=Decimal("12345678901234567890.00")),
            "out_of_range:solde_initial",
        ),
        ("1 MB client_id", "CompteOuvert", opening(7, client_id="k" * 1_000_000), "too_long:client_id"),
    ]
    out = [
        Poison(kind, ev, f"{acc}{i}", _encode(ids[ev], ev, rec), reason)
        for i, (kind, ev, rec, reason) in enumerate(valid)
    ]
    out += [
        Poison("null value (tombstone)", "DepotEffectue", f"{acc}n", None, "null_value"),
        Poison("2-byte value", "DepotEffectue", f"{acc}t", b"\x00\x00", "truncated"),
        Poison("not the Confluent magic byte", "DepotEffectue", f"{acc}m", b"\x7fnot avro", "bad_magic"),
        Poison("unregistered schema id", "DepotEffectue", f"{acc}u", frame(2**31 - 7, b"\x02x"), "unknown_schema_id"),
        Poison("garbage body", "DepotEffectue", f"{acc}g", frame(ids["DepotEffectue"], b"\xff" * 9), "undecodable"),
    ]
    return out


async def read_dlq(
    bootstrap: str, op_ids: set[str], timeout_s: float = 30.0, names: Names = SEED
) -> dict[str, list[Any]]:
    """DLQ records (of the namespace's DLQ) whose `edabench-op-id` is in `op_ids` (every delivery of
    each), read from the start of the topic until every id was seen and nothing more came, or
    `timeout_s` passed."""
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=50)
    await c.start()
    found: dict[str, list[Any]] = {}
    try:
        await c.topics()
        tps = [TopicPartition(names.dlq, p) for p in sorted(c.partitions_for_topic(names.dlq) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=300)
            for recs in batch.values():
                for r in recs:
                    op = dict(r.headers).get(H_OP_ID, b"").decode()
                    if op in op_ids:
                        found.setdefault(op, []).append(r)
            if not batch and set(found) >= op_ids:  # all seen, and nothing more to read
                break
        return found
    finally:
        await c.stop()


async def send(
    producer: AIOKafkaProducer, poisons: list[Poison], op_prefix: str, names: Names = SEED
) -> dict[str, Poison]:
    """Send each poison to its event's topic (in the namespace) with an `edabench-op-id` header;
    returns op id -> poison. The producer needs `max_request_size` above 1 MB for the 1 MB field."""
    sent: dict[str, Poison] = {}
    for i, p in enumerate(poisons):
        op_id = f"{op_prefix}{i}"
        fut = await producer.send(
            names.events[p.event], p.value, key=p.key.encode(), headers=[(H_OP_ID, op_id.encode())]
        )
        await fut
        sent[op_id] = p
    return sent
