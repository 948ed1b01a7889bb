"""Turn one loaded run into what the report shows: tables as plain rows, charts as SVG strings.

Kept apart from the template so the same rows feed the HTML and the Markdown summary, and
so tests can check values (a FAIL row, a margin) without parsing HTML. Which charts a run
gets is decided in `reports.runcharts`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from reports import configtext, runcharts
from reports.gating import evaluate_slos, slo_of
from reports.loader import RunData
from reports.runcharts import OVERALL

PERCENTILE_KEYS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99.9", "p99_9"),
                   ("p99.99", "p99_99"), ("max", "max"))


@dataclass(slots=True)
class SloRow:
    op: str
    name: str
    goal: Any
    measured: Any
    unit: str
    passed: bool
    margin: Any
    detail: str = ""


@dataclass(slots=True)
class OpView:
    """One op kind (or `overall`): counts, percentiles, SLO rows and charts."""

    kind: str
    block: dict[str, Any]
    slo: list[SloRow] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, Any]:
        return self.block.get("counts", {})

    def percentiles(self, metric: str = "response_time_us") -> dict[str, Any]:
        stats = self.block.get(metric) or {}
        return {label: stats.get(key) for label, key in PERCENTILE_KEYS}

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.slo)


@dataclass(slots=True)
class RunView:
    data: RunData
    slo: list[SloRow]
    overall: OpView
    ops: list[OpView]
    charts: dict[str, str]
    environment: list[tuple[str, str]]
    config: list[tuple[str, str]]
    packages: list[tuple[str, str]]
    command: str
    problems: list[str]
    spec_text: str = ""
    panels_left_out: int = 0  # kinds not drawn on the overall over-time chart (only the worst are)

    @property
    def passed(self) -> bool:
        """A run without a summary (it crashed before writing one) never passes."""
        return self.has_summary and all(r.passed for r in self.slo) and self.books_balanced and not self.problems

    @property
    def has_summary(self) -> bool:
        return bool(self.data.summary)

    @property
    def books_balanced(self) -> bool:
        return bool(self.data.summary.get("books_balanced", True))

    @property
    def observed(self) -> list[tuple[str, dict[str, Any]]]:
        """Driver-reported histograms (e.g. read-your-writes lag): name and percentile block."""
        blocks = self.data.summary.get("observed_us") or {}
        names = sorted(set(blocks) | set(self.data.observed))
        return [(n, {label: (blocks.get(n) or {}).get(key) for label, key in PERCENTILE_KEYS}
                 | {"count": (blocks.get(n) or {}).get("count")}) for n in names]


def slo_rows(run: dict[str, Any], summary: dict[str, Any]) -> list[SloRow]:
    slo = slo_of(run, summary)
    if not summary:
        return []
    return [SloRow(c.op, c.name, c.goal, c.measured, c.unit, bool(c.passed), c.margin, getattr(c, "detail", ""))
            for c in evaluate_slos(summary, slo)]


def run_view(data: RunData, with_charts: bool = True) -> RunView:
    """Everything the single-run report shows, computed once."""
    rows = slo_rows(data.run, data.summary)
    env = data.run.get("environment") or {}
    packages = sorted((str(k), configtext.value_text(v)) for k, v in (env.get("packages") or {}).items())
    env_rows = configtext.rows({k: v for k, v in env.items() if k != "packages"})
    config = configtext.rows(data.run.get("config") or {})
    spec = data.run.get("spec")
    spec_text = configtext.toml_text(spec) if isinstance(spec, dict) else ""
    cmd = data.run.get("command")
    command = shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")
    problems = [str(p) for p in (data.summary.get("verify") or {}).get("problems", [])]
    overall = OpView(OVERALL, data.summary.get("overall", {}), [r for r in rows if r.op == OVERALL])
    ops = [OpView(k, data.summary.get("ops", {}).get(k, {}), [r for r in rows if r.op == k]) for k in data.kinds]
    run_charts: dict[str, str] = {}
    panels_left_out = 0
    if with_charts:
        goals = [(r.op, r.name, r.goal, r.passed) for r in rows]
        overall.charts = runcharts.overall_charts(data, goals)
        for op in ops:
            op.charts = runcharts.kind_charts(data, op.kind, goals)
        run_charts = runcharts.run_charts(data)
        panels_left_out = runcharts.latency_panels(data)[1]
    return RunView(data, rows, overall, ops, run_charts, env_rows, config, packages, command, problems, spec_text,
                   panels_left_out)
