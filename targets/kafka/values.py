"""Record values from configuration: random bytes, a text template, or a JSON document with placeholders.

A JSON or Avro value is written as a document (a TOML table, a JSON string, or a .json file) whose
string leaves are templates (harness.templating). A leaf that is one placeholder and nothing else
keeps the placeholder's own type, so `"{id}"` is the number 42, not the text "42" (an Avro `long`
field needs a number); write `"{id!s}"` for the text. JSON braces never need escaping: placeholders
live inside the document's strings.
"""

from __future__ import annotations

import os
import string
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from harness.templating import NAMES, OpVars, Template, TemplateError

Render = Callable[[OpVars], Any]
_formatter = string.Formatter()
POOL_BYTES = 16 << 20  # random values kept in memory, at most
POOL_VALUES = 16  # distinct random values, so that compression sees records that differ


def _bare_field(text: str) -> str | None:
    """The field of a string that is exactly one placeholder without conversion or format, else None."""
    try:
        parsed = list(_formatter.parse(text))
    except ValueError:
        return None
    if len(parsed) != 1:
        return None
    literal, field, spec, conversion = parsed[0]
    if literal or field is None or spec or conversion:
        return None
    return field


def _getter(field: str) -> Render:
    root, _, rest = field.partition(".")
    attrs = rest.split(".") if rest else []

    def get(values: OpVars) -> Any:
        v = values[root]
        for a in attrs:
            v = getattr(v, a)
        return str(v) if isinstance(v, uuid.UUID) else v
    return get


def compile_doc(node: Any, where: str, columns: set[str] | None) -> Render:
    """A renderer for a JSON-like document whose string leaves are templates; checks every placeholder."""
    if isinstance(node, dict):
        items = [(k, compile_doc(v, f"{where}.{k}", columns)) for k, v in node.items()]
        return lambda values: {k: r(values) for k, r in items}
    if isinstance(node, list):
        parts = [compile_doc(v, f"{where}[{i}]", columns) for i, v in enumerate(node)]
        return lambda values: [r(values) for r in parts]
    if isinstance(node, str):
        template = Template(node, where, columns)  # refuses unknown placeholders, naming the field
        if template.static:
            return lambda values: node
        field = _bare_field(node)
        if field is not None and field.split(".", 1)[0] in NAMES:
            return _getter(field)
        return template.render
    return lambda values: node


def parse_json_doc(text: str, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise TemplateError(f"{where}: not a JSON document ({exc}); placeholders go inside its strings, "
                            'e.g. {"id": "{id}"}') from None


class ValueMaker:
    """Makes one record value per op: `make(values, seq) -> (bytes, document or None)`."""

    needs_vars = True

    def make(self, values: OpVars | None, seq: int) -> tuple[bytes, Any]:
        raise NotImplementedError


class RandomBytes(ValueMaker):
    """`value_size` random bytes, drawn once: a few distinct values taken in turn, nothing made per op."""

    needs_vars = False

    def __init__(self, size: int) -> None:
        n = max(1, min(POOL_VALUES, POOL_BYTES // max(size, 1)))
        self.pool = [os.urandom(size) for _ in range(n)]

    def make(self, values: OpVars | None, seq: int) -> tuple[bytes, Any]:
        pool = self.pool
        return pool[seq % len(pool)], None


class TextValue(ValueMaker):
    """A text template, sent as its UTF-8 bytes (serializer "bytes")."""

    def __init__(self, template: Template) -> None:
        self.template = template
        self.needs_vars = not template.static
        self._static = template.text.encode() if template.static else b""

    def make(self, values: OpVars | None, seq: int) -> tuple[bytes, Any]:
        if values is None:
            return self._static, None
        return self.template.render(values).encode(), None


class JsonValue(ValueMaker):
    """A document rendered per op and serialized with orjson (serializer "json")."""

    def __init__(self, render: Render) -> None:
        self.render = render

    def make(self, values: OpVars | None, seq: int) -> tuple[bytes, Any]:
        doc = self.render(values)  # type: ignore[arg-type]
        return orjson.dumps(doc), doc


class AvroValue(ValueMaker):
    """A document rendered per op and encoded with the schema, framed for Confluent (serializer "avro")."""

    def __init__(self, render: Render, encode: Callable[[Any], bytes]) -> None:
        self.render = render
        self.encode = encode

    def make(self, values: OpVars | None, seq: int) -> tuple[bytes, Any]:
        doc = self.render(values)  # type: ignore[arg-type]
        return self.encode(doc), doc
