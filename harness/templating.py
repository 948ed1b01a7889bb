"""Per-op values for configuration-only targets: `{placeholders}` in URLs, headers and bodies.

Like k6's SharedArray or Vegeta's targets file, a spec can name a CSV or JSON-lines data file
whose rows feed the templates; rows are taken in order (cycling) or at random. Placeholders:

    {id}          the op's id (unique in the run)       {seq}       this process's op number
    {kind}        the op kind                           {process}   generator process index
    {uuid}        a random UUID                         {rand}      a random integer 0..2**31
    {intended_ns} the op's intended start (monotonic)   {now_ms}    wall-clock ms
    {run_id}      the run's id                          {row.COL}   column COL of the data row

Unknown placeholders are refused when the template is compiled, naming the field.
"""

from __future__ import annotations

import csv
import io
import random
import string
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

NAMES = frozenset({"id", "seq", "kind", "process", "uuid", "rand", "intended_ns", "now_ms", "run_id", "row"})
_formatter = string.Formatter()


class TemplateError(ValueError):
    """A template that cannot be used; the message names the field."""


class Row:
    """One data-file row; `{row.col}` reads a column."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"the data row has no column {name!r}") from None


class OpVars:
    """The mapping a template is filled from, computed lazily (a uuid only when asked for)."""

    __slots__ = ("op", "process", "row", "run_id", "seq")

    def __init__(self, op: Any, seq: int, process: int, run_id: str, row: Row | None) -> None:
        self.op, self.seq, self.process, self.run_id, self.row = op, seq, process, run_id, row

    def __getitem__(self, name: str) -> Any:
        if name == "id":
            return self.op.id
        if name == "seq":
            return self.seq
        if name == "kind":
            return self.op.kind
        if name == "process":
            return self.process
        if name == "uuid":
            return uuid.uuid4()
        if name == "rand":
            return random.getrandbits(31)
        if name == "intended_ns":
            return self.op.intended_ns
        if name == "now_ms":
            return time.time_ns() // 1_000_000
        if name == "run_id":
            return self.run_id
        if name == "row":
            if self.row is None:
                raise KeyError("row (no data_file is set)")
            return self.row
        raise KeyError(name)


class Template:
    """A string with placeholders, checked once; a string without any is returned as it is."""

    __slots__ = ("fields", "static", "text")

    def __init__(self, text: str, where: str, data_columns: set[str] | None = None) -> None:
        self.text = text
        try:
            parsed = list(_formatter.parse(text))
        except ValueError as exc:
            raise TemplateError(f"{where}: {exc} in {text!r} (write {{{{ and }}}} for literal braces)") from None
        self.fields = [f for _, f, _, _ in parsed if f is not None]
        for f in self.fields:
            root = f.split(".", 1)[0].split("[", 1)[0]
            if root not in NAMES:
                raise TemplateError(f"{where}: unknown placeholder {{{f}}}; known: "
                                    f"{', '.join(sorted(NAMES - {'row'}))}, row.COLUMN")
            if root == "row":
                if data_columns is None:
                    raise TemplateError(f"{where}: {{{f}}} needs a data_file")
                col = f.split(".", 1)[1] if "." in f else ""
                if col not in data_columns:
                    raise TemplateError(f"{where}: the data file has no column {col!r}; it has "
                                        f"{', '.join(sorted(data_columns))}")
        self.static = not self.fields

    def render(self, values: OpVars) -> str:
        return self.text if self.static else self.text.format_map(values)  # type: ignore[arg-type]


def load_rows(path: str | Path, where: str) -> list[dict[str, Any]]:
    """Rows of a CSV file (first line: the column names) or a JSON-lines file (one object per line)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"{where}: cannot read {p}: {exc.strerror or exc}") from None
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise TemplateError(f"{where}: {p}:{n}: not JSON: {exc}") from None
            if not isinstance(obj, dict):
                raise TemplateError(f"{where}: {p}:{n}: each line must be a JSON object")
            rows.append(obj)
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise TemplateError(f"{where}: {p} has no rows")
    return rows


class DataRows:
    """The rows of a data file, handed out in order (cycling) or at random."""

    def __init__(self, rows: list[dict[str, Any]], order: str = "sequential", seed: int = 1) -> None:
        self.rows = [Row(r) for r in rows]
        self.columns = set().union(*(r.keys() for r in rows))
        self.random = order == "random"
        self._rng = random.Random(seed)

    def pick(self, seq: int) -> Row:
        if self.random:
            return self.rows[self._rng.randrange(len(self.rows))]
        return self.rows[seq % len(self.rows)]
