"""The short Markdown summary for CI job summaries: verdict, SLO table, key percentiles, regressions.

Job summaries render inline HTML, so every string from a run is escaped here as well.
"""

from __future__ import annotations

import html
from collections.abc import Iterable

from reports import fmt
from reports.compare import Comparison
from reports.model import OpView, RunView


def esc(text: object) -> str:
    """Text safe in a Markdown table cell: HTML escaped, pipes and newlines neutralised."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ").replace("`", "\\`")


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def _slo_lines(view: RunView) -> list[str]:
    if not view.slo:
        return ["No SLO goals set."]
    return _table(
        ["op", "goal", "target", "measured", "result", "margin"],
        ([esc(r.op), esc(r.name), fmt.with_unit(r.goal, r.unit), fmt.with_unit(r.measured, r.unit),
          "✅ PASS" if r.passed else "❌ FAIL", fmt.margin(r.margin)] for r in view.slo),
    )


def _percentile_row(op: OpView) -> list[str]:
    c = op.counts
    p = op.percentiles()
    return [esc(op.kind), fmt.num(c.get("scheduled")), fmt.num(c.get("error")), fmt.num(c.get("timeout")),
            fmt.num(c.get("not_sent")), fmt.rate(op.block.get("achieved_rate")),
            *(fmt.ms(p[k]) for k in ("p50", "p90", "p99", "p99.9", "max"))]


def run_summary(view: RunView, heading: str = "##") -> list[str]:
    d = view.data
    verdict = "PASS" if view.passed else "FAIL"
    lines = [f"{heading} edabench: {esc(d.name)}: {verdict}", ""]
    if d.closed_loop:
        lines += ["> **CLOSED-LOOP RUN**: latencies understate what users would see at this load.", ""]
    if not view.books_balanced:
        lines += ["> **Books do not balance**: the run fails.", ""]
    lines += [f"> Verification problem: {esc(p)}" for p in view.problems]
    lines += [f"Run `{esc(d.label)}`, measured {fmt.num(d.summary.get('measured_s'))} s.", ""]
    lines += [*_slo_lines(view), ""]
    header = ["op", "scheduled", "errors", "timeouts", "not sent", "achieved",
              "p50", "p90", "p99", "p99.9", "max"]
    ops = [view.overall] + (view.ops if len(view.ops) > 1 else [])
    lines += [*_table(header, (_percentile_row(o) for o in ops)), ""]
    return lines


def comparison_summary(comp: Comparison) -> list[str]:
    band = f"noise band ±{comp.tolerance * 100:.3g} %"
    lines = [f"### Against baseline `{esc(comp.baseline.label)}` ({band})", ""]
    if not comp.rows:
        return [*lines, "No comparable metrics.", ""]
    lines.append(f"**{len(comp.regressions)} regression(s).**" if comp.regressions else "No regression.")
    lines.append("")
    for g in comp.groups:  # one heading per compared run, not its id on every row
        lines += [f"#### `{esc(g.run.label)}`: {len(g.regressions)} regression(s)", ""]
        lines += _table(["op", "metric", "baseline", "current", "change", "verdict"],
                        ([esc(r.op), esc(r.metric), fmt.with_unit(r.baseline, r.unit),
                          fmt.with_unit(r.current, r.unit),
                          fmt.pct_change(r.ratio), ("❌ " if r.regression else "") + r.verdict]
                         for r in g.rows))
        lines.append("")
    return lines


def render(views: list[RunView], comparison: Comparison | None = None) -> str:
    lines: list[str] = []
    for v in views[-1:] if comparison else views:
        lines += run_summary(v)
    if comparison:
        lines += comparison_summary(comparison)
    return "\n".join(lines).rstrip() + "\n"
