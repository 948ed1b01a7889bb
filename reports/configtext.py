"""Configuration as a person reads it: key/value rows and TOML-like text, never Python reprs.

Workload specs are written in TOML, so the spec as run is shown back in TOML's shape
(tables, arrays of tables, `true`, quoted strings). TOML has no null: a key that is not set
is shown as a comment. The output is text; the template escapes it like any other string.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
NOT_SET = "not set"


def value_text(v: Any) -> str:
    """One value for a key/value table: `true`, `200`, `0.25`, `a, b`; empty collections read "none"."""
    if v is None:
        return NOT_SET
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _float(v)
    if isinstance(v, int | str):
        return str(v)
    if isinstance(v, list | tuple):
        return ", ".join(value_text(x) for x in v) if v else "none"
    if isinstance(v, dict):
        return ", ".join(f"{k} = {value_text(x)}" for k, x in v.items()) if v else "none"
    return str(v)


def _float(v: float) -> str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def rows(d: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested settings as (dotted key, value text) rows; list items of tables get `key[i].`."""
    out: list[tuple[str, str]] = []
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out += rows(value, f"{name}.")
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for i, item in enumerate(value):
                out += rows(item, f"{name}[{i}].") if item else [(f"{name}[{i}]", "none")]
        else:
            out.append((name, value_text(value)))
    return out


def _key(k: Any) -> str:
    k = str(k)
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def _toml_value(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else _float(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    return json.dumps(str(v), ensure_ascii=False)


def _is_table(v: Any) -> bool:
    return isinstance(v, dict) and bool(v)


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(_is_table(x) for x in v)


def _emit(table: dict[str, Any], path: list[str], out: list[str]) -> None:
    for k, v in table.items():
        if _is_table(v) or _is_table_array(v):
            continue
        out.append(f"# {_key(k)}: {NOT_SET}" if v is None else f"{_key(k)} = {_toml_value(v)}")
    for k, v in table.items():
        name = ".".join(_key(p) for p in [*path, k])
        if _is_table(v):
            out += ["", f"[{name}]"]
            _emit(v, [*path, k], out)
        elif _is_table_array(v):
            for item in v:
                out += ["", f"[[{name}]]"]
                _emit(item, [*path, k], out)


def toml_text(d: dict[str, Any]) -> str:
    """A mapping as TOML-like text: scalars first, then `[tables]` and `[[arrays of tables]]`."""
    out: list[str] = []
    _emit(d, [], out)
    return "\n".join(out).strip("\n") + "\n" if out else ""
