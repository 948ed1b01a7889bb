"""Avro in the Confluent wire format: magic byte 0, the schema id (4 bytes, big-endian), the Avro body.

Any Confluent deserializer (Java, librdkafka's serdes, Kafka Streams' SpecificAvroSerde) reads
what this writes, provided the id was registered in the registry it asks. Schemas are parsed
once; encoding and decoding do no I/O, and a decoder asks the registry only for an id it has not
seen (`resolve`), which the caller does off the hot path.
"""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import fastavro

from targets.kafka.registry import RegistryClient, canonical

MAGIC = 0
HEADER = struct.Struct(">bI")


class SchemaError(ValueError):
    """A schema file that cannot be used; the message names the field."""


def frame(schema_id: int, body: bytes) -> bytes:
    return HEADER.pack(MAGIC, schema_id) + body


def schema_id_of(data: bytes | None) -> int | None:
    """The schema id of a wire-format value, or None when the value is not in that format."""
    if data is None or len(data) < HEADER.size or data[0] != MAGIC:
        return None
    return int(HEADER.unpack_from(data)[1])


def load_schema(path: str, where: str) -> tuple[str, Any]:
    """(canonical text, parsed schema) of an .avsc file; raises SchemaError naming `where`.

    Blocking (a file read): call it through asyncio.to_thread."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"{where}: cannot read {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise SchemaError(f"{where}: {path} is not JSON: {exc}") from None
    try:
        parsed = fastavro.parse_schema(doc)
    except Exception as exc:  # fastavro raises SchemaParseException, UnknownType (a ValueError), KeyError...
        raise SchemaError(f"{where}: {path} is not a valid Avro schema: {type(exc).__name__}: {exc}") from None
    return canonical(doc), parsed


class AvroEncoder:
    """One schema, one id: a record (dict) to its framed bytes."""

    __slots__ = ("_header", "_parsed")

    def __init__(self, schema_id: int, parsed: Any) -> None:
        self._header = HEADER.pack(MAGIC, schema_id)
        self._parsed = parsed

    def encode(self, record: Any) -> bytes:
        buf = io.BytesIO()
        buf.write(self._header)
        fastavro.schemaless_writer(buf, self._parsed, record)
        return buf.getvalue()


class AvroDecoder:
    """Framed bytes back to a record, with the writer's schema looked up by id (cached, also misses)."""

    def __init__(self, registry: RegistryClient | None, known: dict[int, Any] | None = None) -> None:
        self._registry = registry
        self._by_id: dict[int, Any] = dict(known or {})

    def knows(self, schema_id: int) -> bool:
        return schema_id in self._by_id

    async def resolve(self, ids: set[int]) -> None:
        """Fetch the schemas of ids not seen yet; an id the registry does not have is remembered as None."""
        for sid in ids - self._by_id.keys():
            text = await self._registry.get(sid) if self._registry is not None else None
            self._by_id[sid] = fastavro.parse_schema(json.loads(text)) if text is not None else None

    def decode(self, data: bytes) -> Any:
        """The record; raises KeyError for an id not resolved, ValueError for an unknown id or bad body."""
        sid = schema_id_of(data)
        if sid is None:
            raise ValueError("not in the Confluent wire format")
        parsed = self._by_id[sid]
        if parsed is None:
            raise ValueError(f"schema id {sid} is not in the registry")
        try:
            return fastavro.schemaless_reader(io.BytesIO(memoryview(data)[HEADER.size:]), parsed, None)
        except Exception as exc:  # fastavro raises several kinds on bytes that do not fit the schema
            raise ValueError(f"undecodable with schema id {sid}: {type(exc).__name__}") from None
