"""Render the report template. Autoescape is on: every string from a run or workload is text.

Only chart SVG produced by `reports.charts` passes through unescaped (the `svg` filter),
and matplotlib escapes any text it writes into it.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from reports import fmt


def breakable(text: object) -> Markup:
    """Escaped text with line-break opportunities after `_ - . /`: long op names and run ids wrap
    at their word joints in a narrow column instead of mid-word or by widening the table."""
    out = str(escape(text))
    for ch in "_-./":
        out = out.replace(ch, ch + "<wbr>")
    return Markup(out)


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters.update(
        svg=lambda s: Markup(s) if s else "",
        ms=fmt.ms,
        num=fmt.num,
        unit=fmt.with_unit,
        rate=fmt.rate,
        change=fmt.pct_change,
        margin=fmt.margin,
        when=fmt.when,
        breakable=breakable,
    )
    return env


def render(**context: Any) -> str:
    return environment().get_template("report.html.j2").render(**context)
