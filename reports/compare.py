"""Several runs side by side: overlaid spectra and time series, and the deltas of each run.

The first run is the baseline. Each other run's deltas form one group (an op x metric matrix
on the page, so a run id is printed once, not on every row). Whether a change is a regression is
decided by the gate's own statistical comparison (harness.results.baseline, through
reports.gating.compare_runs), so the report and `edabench gate --baseline` agree; the tolerance is
drawn as the noise band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reports import charts
from reports.charts import Curve, Line
from reports.gating import compare_runs
from reports.loader import RunData
from reports.runcharts import OVERALL


@dataclass(slots=True)
class DeltaRow:
    against: str  # label of the run compared with the baseline
    op: str
    metric: str
    baseline: Any
    current: Any
    ratio: float | None
    regression: bool
    verdict: str  # "regression", "within noise" or "changed"
    unit: str = ""


@dataclass(slots=True)
class DeltaGroup:
    """One compared run against the baseline: its deltas as an op x metric matrix, and their chart."""

    run: RunData
    rows: list[DeltaRow]
    chart: str = ""
    notes: list[str] = field(default_factory=list)  # what differs between the runs, data too thin to test

    @property
    def ops(self) -> list[str]:
        return list(dict.fromkeys(r.op for r in self.rows))

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(r.metric for r in self.rows))

    def cell(self, op: str, metric: str) -> DeltaRow | None:
        return next((r for r in self.rows if r.op == op and r.metric == metric), None)

    @property
    def regressions(self) -> list[DeltaRow]:
        return [r for r in self.rows if r.regression]


@dataclass(slots=True)
class Comparison:
    baseline: RunData
    others: list[RunData]
    tolerance: float
    groups: list[DeltaGroup]
    charts: dict[str, str]
    kind_charts: dict[str, dict[str, str]]

    @property
    def rows(self) -> list[DeltaRow]:
        return [r for g in self.groups for r in g.rows]

    @property
    def regressions(self) -> list[DeltaRow]:
        return [r for r in self.rows if r.regression]


def _verdict(ratio: float | None, regression: bool, tolerance: float) -> str:
    if regression:
        return "regression"
    if ratio is None or not math.isfinite(ratio) or abs(ratio - 1.0) <= tolerance:
        return "within noise"
    return "changed"


def delta_rows(baseline: RunData, others: list[RunData], tolerance: float,
               notes: list[str] | None = None) -> list[DeltaRow]:
    rows = []
    for run in others:
        deltas, run_notes = compare_runs(run.path, baseline.path, tolerance)
        if notes is not None:
            notes.extend(run_notes)
        for d in deltas:
            ratio = float(d.ratio) if d.ratio is not None else None
            rows.append(DeltaRow(run.label, d.op, d.metric, d.baseline, d.current, ratio, bool(d.regression),
                                 _verdict(ratio, bool(d.regression), tolerance), getattr(d, "unit", "")))
    return rows


def _per_second(run: RunData, key: str) -> tuple[list[float], list[float]]:
    pts = [(r["t"], r[key]) for r in run.timeseries if isinstance(r.get(key), int | float) and "t" in r]
    return [p[0] for p in pts], [p[1] for p in pts]


def _ratio_chart(rows: list[DeltaRow], tolerance: float) -> str:
    finite = [r for r in rows if r.ratio is not None and math.isfinite(r.ratio)]
    if not finite:
        return ""
    labels = [f"{'all' if r.op == OVERALL else r.op} {r.metric}" for r in finite]
    return charts.ratio_svg(labels, [r.ratio or 1.0 for r in finite], [r.regression for r in finite], tolerance)


def compare(runs: list[RunData], tolerance: float, with_charts: bool = True) -> Comparison:
    baseline, others = runs[0], runs[1:]
    groups = []
    for run in others:
        notes: list[str] = []
        groups.append(DeltaGroup(run, delta_rows(baseline, [run], tolerance, notes), notes=notes))
    out: dict[str, str] = {}
    kinds: dict[str, dict[str, str]] = {}
    if with_charts:
        curves = [Curve(r.label, m) for r in runs if (m := r.merged("response")) is not None]
        if curves:
            out["spectrum"] = charts.spectrum_svg(curves, title="response time, all kinds")
        rate_lines = []
        for r in runs:
            t, ok = _per_second(r, "ok")
            if t:
                rate_lines.append(Line(r.label, t, ok))
        if rate_lines:
            out["rate"] = charts.line_svg(rate_lines, "ok ops/s", title="completed ok per second")
        for kind in dict.fromkeys(k for r in runs for k in r.kinds):
            kc: dict[str, str] = {}
            curves = [Curve(r.label, lg.response.merged) for r in runs
                      if (lg := r.logs.get(kind)) and lg.response and lg.response.merged]
            if curves:
                kc["spectrum"] = charts.spectrum_svg(curves)
            lines = []
            for r in runs:
                lg = r.logs.get(kind)
                if lg and lg.response and len(lg.response.series):
                    s = lg.response.series
                    has = s.count > 0
                    lines.append(Line(f"{r.label} p99", s.t_s[has], s.p99[has] / 1000.0))
            if lines:
                kc["latency"] = charts.line_svg(lines, "p99 response", log_y=True, ms=True)
            if kc:
                kinds[kind] = kc
        for g in groups:
            g.chart = _ratio_chart(g.rows, tolerance)
    return Comparison(baseline, others, tolerance, groups, out, kinds)
