"""Which output record finishes which op: by a header the driver sets, or by a key or field the user names.

`header` (the default) needs nothing of the user's processor but that it copies record headers:
the driver writes `edabench-op: <run tag>/<op id>` and parses it back, with no table of ops
in flight. `key`, `json:<path>` and `avro:<path>` match a value the user's processor keeps
(its record key, a field of its JSON or Avro output) against the value each op produced; those
ops wait in a table keyed by that value until their record arrives or they are long past their
timeout. Two ops in flight with the same value are matched first in, first out.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from targets.kafka.avro import AvroDecoder, schema_id_of

log = logging.getLogger(__name__)

HEADER = "edabench-op"
Mode = Literal["header", "key", "json", "avro"]
CompleteMany = Callable[..., None]  # Completions.complete_many(op_ids, completed_ns=None)
Spawn = Callable[[Callable[[], Coroutine[Any, Any, None]], str], None]
_DEFER = object()


@dataclass(frozen=True, slots=True)
class Correlation:
    mode: Mode
    path: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Correlation:
        """`header`, `key`, `json:<dotted.path>` or `avro:<dotted.path>`; raises ValueError otherwise."""
        mode, sep, path = text.partition(":")
        if not sep and mode in ("header", "key"):
            return cls(mode)  # type: ignore[arg-type]
        if sep and mode in ("json", "avro"):
            parts = tuple(path.split("."))
            if all(parts):
                return cls(mode, parts)  # type: ignore[arg-type]
            raise ValueError(f"{text!r}: the field path after {mode}: is empty or has an empty part")
        raise ValueError(f'{text!r}: use "header", "key", "json:<dotted.path>" or "avro:<dotted.path>"')

    @property
    def by_field(self) -> bool:
        return self.mode in ("json", "avro")


def lookup(doc: Any, path: Sequence[str]) -> Any:
    """The value at a dotted path of a decoded document (dict keys, list indices), or None."""
    for part in path:
        if isinstance(doc, dict):
            doc = doc.get(part)
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            return None
    return doc


def token(value: Any) -> str | None:
    """A field's value as the text both sides compare (42 and "42" match; a missing field is None)."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class HeaderMatcher:
    """Reads `edabench-op: <tag>/<op id>`; records of other runs and processes carry another tag."""

    def __init__(self, tag: str, complete_many: CompleteMany) -> None:
        self.prefix = f"{tag}/".encode()
        self.complete_many = complete_many
        self.matched = 0
        self.foreign = 0
        self.unmatched = 0

    def on_records(self, records: list[Any]) -> None:
        prefix, n = self.prefix, len(self.prefix)
        ids: list[int] = []
        for rec in records:
            headers = rec.headers()
            found = False
            if headers:
                for name, value in headers:
                    if name == HEADER:
                        found = True
                        if value is not None and value.startswith(prefix) and value[n:].isdigit():
                            ids.append(int(value[n:]))
                        else:
                            self.foreign += 1
                        break
            if not found:
                self.unmatched += 1
                if self.unmatched == 1:
                    log.warning("an output record has no %s header: does the processor copy record headers?",
                                HEADER)
        if ids:
            self.matched += len(ids)
            self.complete_many(ids)

    def forget_before(self, op_id: int) -> int:
        return 0

    @property
    def waiting(self) -> int:
        return 0


class TokenMatcher:
    """Ops waiting for a record whose key or field equals the value they produced."""

    def __init__(self, correlation: Correlation, complete_many: CompleteMany, *, spawn: Spawn | None = None,
                 decoder: AvroDecoder | None = None, not_before_ms: int = 0) -> None:
        self.correlation = correlation
        self.complete_many = complete_many
        self.spawn = spawn
        self.decoder = decoder
        #: records stamped earlier than this are left over from before the run (a broker whose
        #: "latest offset" lies inside its last batch hands a few of them back)
        self.not_before_ms = not_before_ms
        self.pending: dict[Any, int] = {}
        self.dups: dict[Any, deque[int]] = {}
        self.deferred: list[tuple[int, list[Any]]] = []  # (arrival ns, records) waiting for a schema
        self._resolving = False
        self.matched = 0
        self.unmatched = 0
        self.stale = 0
        self._warned: set[str] = set()
        mode = correlation.mode
        self.extract: Callable[[Any], Any] = (
            self._key if mode == "key" else self._json if mode == "json" else self._avro)

    # -- the produce side ------------------------------------------------------------------------------
    def expect(self, value: Any, op_id: int) -> None:
        if value in self.pending:
            q = self.dups.get(value)
            if q is None:
                q = self.dups[value] = deque()
            q.append(op_id)
        else:
            self.pending[value] = op_id

    def _take(self, value: Any) -> int | None:
        op_id = self.pending.pop(value, None)
        if op_id is not None and self.dups:
            q = self.dups.get(value)
            if q:
                self.pending[value] = q.popleft()
                if not q:
                    del self.dups[value]
        return op_id

    def forget_before(self, op_id: int) -> int:
        """Drop ops with a smaller id (sent long enough ago to have timed out); returns how many."""
        old = []
        for value, waiting in self.pending.items():
            if waiting >= op_id:
                break
            old.append(value)
        for value in old:
            del self.pending[value]
        dropped = len(old)
        for value in [v for v, q in self.dups.items() if q and q[0] < op_id]:
            q = self.dups[value]
            while q and q[0] < op_id:
                q.popleft()
                dropped += 1
            if not q:
                del self.dups[value]
        return dropped

    @property
    def waiting(self) -> int:
        return len(self.pending) + sum(len(q) for q in self.dups.values())

    # -- the output side -------------------------------------------------------------------------------
    def on_records(self, records: list[Any], arrived_ns: int | None = None) -> None:
        arrived_ns = arrived_ns or time.monotonic_ns()
        extract, take = self.extract, self._take
        not_before = self.not_before_ms
        ids: list[int] = []
        later: list[Any] = []
        for rec in records:
            if not_before:
                kind, ts = rec.timestamp()
                if kind and ts < not_before:
                    self.stale += 1
                    continue
            value = extract(rec)
            if value is _DEFER:
                later.append(rec)
                continue
            op_id = take(value) if value is not None else None
            if op_id is None:
                self.unmatched += 1
            else:
                ids.append(op_id)
        if ids:
            self.matched += len(ids)
            self.complete_many(ids, arrived_ns)
        if later:
            self.deferred.append((arrived_ns, later))
            if not self._resolving and self.spawn is not None:
                self._resolving = True
                self.spawn(self._resolve, "kafka-schema-lookup")

    async def _resolve(self) -> None:
        """Fetch the writer schemas of deferred Avro records, then match them at their arrival time."""
        assert self.decoder is not None
        try:
            while self.deferred:
                batch, self.deferred = self.deferred, []
                ids = {schema_id_of(rec.value()) for _, recs in batch for rec in recs}
                await self.decoder.resolve({i for i in ids if i is not None})
                for arrived_ns, recs in batch:
                    self.on_records(recs, arrived_ns)
        finally:
            self._resolving = False

    def _warn(self, reason: str) -> None:
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning("output records not matched to an op: %s", reason)

    def _key(self, rec: Any) -> Any:
        return rec.key()

    def _json(self, rec: Any) -> Any:
        try:
            doc = orjson.loads(rec.value())
        except (orjson.JSONDecodeError, TypeError):
            self._warn("a value is not JSON")
            return None
        value = token(lookup(doc, self.correlation.path))
        if value is None:
            self._warn(f"a JSON value has no field {'.'.join(self.correlation.path)}")
        return value

    def _avro(self, rec: Any) -> Any:
        data = rec.value()
        sid = schema_id_of(data)
        if sid is None:
            self._warn("a value is not in the Confluent Avro wire format")
            return None
        assert self.decoder is not None
        if not self.decoder.knows(sid):
            return _DEFER if self.spawn is not None else None
        try:
            doc = self.decoder.decode(data)
        except ValueError as exc:
            self._warn(str(exc))
            return None
        value = token(lookup(doc, self.correlation.path))
        if value is None:
            self._warn(f"an Avro value has no field {'.'.join(self.correlation.path)}")
        return value
