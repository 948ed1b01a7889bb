"""Avro encoding in the Confluent wire format: magic byte 0, 4-byte big-endian schema id, body.

Schemas are parsed once; the producer side caches event -> schema id, the consumer side caches
schema id -> parsed schema, so the registry is only asked on the first use of an id.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro

from targets.bank.registry import SchemaRegistry
from targets.bank.topics import SCHEMA_FILES, SEED, Names

SCHEMA_DIR = Path(__file__).parent / "schemas"
MAGIC = 0
_HEADER = struct.Struct(">bI")


class DecodeError(Exception):
    """A record that cannot be decoded; `reason` is a short kind used in DLQ headers and outcomes."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def load_schema_text(event: str) -> str:
    """The canonical JSON text of an event's schema (stable across processes, so ids dedupe)."""
    raw = json.loads((SCHEMA_DIR / f"{SCHEMA_FILES[event]}.avsc").read_text(encoding="utf-8"))
    return json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def parse(schema_text: str) -> Any:
    return fastavro.parse_schema(json.loads(schema_text))


def frame(schema_id: int, body: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + body


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """Split a wire-format record into (schema id, body); raises DecodeError on a bad header."""
    if data is None:  # a tombstone: no value at all, which no event is
        raise DecodeError("null_value", "the record has no value")
    if len(data) < 5:
        raise DecodeError("truncated", f"{len(data)} bytes, the wire header alone is 5")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError("bad_magic", f"magic byte {magic}")
    return schema_id, memoryview(data)[5:]


class Encoder:
    """Producer side: registers every event schema once, under the subjects of `names` (its topics'
    namespace), then encodes without I/O."""

    def __init__(self, registry: SchemaRegistry, names: Names = SEED) -> None:
        self._registry = registry
        self._names = names
        self._ids: dict[str, int] = {}
        self._parsed: dict[str, Any] = {}

    async def register_all(self) -> dict[str, int]:
        for event in SCHEMA_FILES:
            text = load_schema_text(event)
            self._ids[event] = await self._registry.register(self._names.subject_for(event), text)
            self._parsed[event] = parse(text)
        return dict(self._ids)

    def encode(self, event: str, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(_HEADER.pack(MAGIC, self._ids[event]))
        fastavro.schemaless_writer(buf, self._parsed[event], record)
        return buf.getvalue()


class Decoder:
    """Consumer side: id -> (event name, parsed schema), filled from the registry on a miss."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self._registry = registry
        self._by_id: dict[int, tuple[str, Any] | None] = {}

    def unknown_ids(self, values: list[bytes | None]) -> set[int]:
        out: set[int] = set()
        for v in values:
            if v is not None and len(v) >= 5 and v[0] == MAGIC:
                sid = _HEADER.unpack_from(v)[1]
                if sid not in self._by_id:
                    out.add(sid)
        return out

    async def resolve(self, ids: set[int]) -> None:
        """Fetch schemas for ids not seen yet; unknown ids are cached as None (negative cache)."""
        for sid in ids:
            text = await self._registry.get(sid)
            if text is None:
                self._by_id[sid] = None
                continue
            parsed = parse(text)
            self._by_id[sid] = (parsed["name"].rsplit(".", 1)[-1], parsed)

    def decode(self, data: bytes | None) -> tuple[str, dict[str, Any]]:
        """Decode a record whose schema id was resolved; raises DecodeError with a reason."""
        sid, body = unframe(data)
        entry = self._by_id.get(sid)
        if entry is None:
            raise DecodeError("unknown_schema_id", str(sid))
        name, parsed = entry
        buf = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(buf, parsed, None)
        except Exception as exc:  # fastavro raises several types on garbage
            raise DecodeError("undecodable", type(exc).__name__) from None
        if buf.tell() != len(body):
            raise DecodeError("undecodable", "trailing bytes")
        return name, record  # type: ignore[return-value]
