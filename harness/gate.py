"""The gate: SLO checks on one run and regression checks against a baseline run.

The HTML report imports these same functions, so a report and `edabench gate`
can never disagree on what passed or what regressed.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LATENCY_GOALS = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p99_9",
    "max_ms": "max",
}
COMPARED_LATENCIES = ("p50", "p99", "p99_9", "max")
DEFAULT_TOLERANCE = 0.10


@dataclass(frozen=True)
class Check:
    op: str  # "overall", an op kind, or "run"
    name: str
    goal: float | None
    measured: float | None
    unit: str
    passed: bool
    margin: float | None  # share of the goal still free (negative: by how much it was missed)
    detail: str = ""


@dataclass(frozen=True)
class Delta:
    op: str
    metric: str
    baseline: float | None
    current: float | None
    ratio: float | None
    regression: bool
    unit: str


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """summary.json of a run directory (or a summary.json path)."""
    p = Path(run_dir)
    if p.is_dir():
        p = p / "summary.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no summary.json (is this a run directory?)")
    return orjson.loads(p.read_bytes())


def _percentile_us(block: dict[str, Any], key: str) -> float | None:
    rt = block.get("response_time_us", {})
    value = rt.get(key)
    return float(value) if value is not None else None


def _upper(op: str, name: str, goal: float, measured: float | None, unit: str) -> Check:
    if measured is None:
        return Check(op, name, goal, None, unit, False, None, "no samples")
    margin = (goal - measured) / goal if goal else None
    return Check(op, name, goal, measured, unit, measured <= goal, margin)


def _checks_for(op: str, block: dict[str, Any], slo: dict[str, Any]) -> list[Check]:
    out: list[Check] = []
    for goal_key, pkey in LATENCY_GOALS.items():
        goal = slo.get(goal_key)
        if goal is None:
            continue
        us = _percentile_us(block, pkey)
        out.append(_upper(op, goal_key, float(goal), us / 1000.0 if us is not None else None, "ms"))
    if slo.get("max_error_rate") is not None:
        out.append(_upper(op, "max_error_rate", float(slo["max_error_rate"]), block.get("error_rate"), "ratio"))
    if slo.get("min_rate_ratio") is not None:
        goal = float(slo["min_rate_ratio"])
        target, achieved = block.get("target_rate") or 0.0, block.get("achieved_rate") or 0.0
        ratio = achieved / target if target else None
        if ratio is None:
            out.append(Check(op, "min_rate_ratio", goal, None, "ratio", False, None, "nothing scheduled"))
        else:
            out.append(Check(op, "min_rate_ratio", goal, round(ratio, 4), "ratio", ratio >= goal,
                             (ratio - goal) / goal))
    return out


def evaluate_slos(summary: dict[str, Any], slo: dict[str, Any] | None = None) -> list[Check]:
    """Every goal of the spec's [slo] table, plus the run's own integrity checks."""
    slo = summary.get("slo", {}) if slo is None else slo
    checks = [
        Check("run", "books_balanced", None, None, "", bool(summary.get("books_balanced")), None,
              "every scheduled op has exactly one outcome"),
        Check("run", "verify", None, float(len(summary.get("verify", {}).get("problems", []))), "problems",
              not summary.get("verify", {}).get("problems"), None,
              "; ".join(summary.get("verify", {}).get("problems", [])[:5])),
        Check("run", "complete", None, None, "", not summary.get("interrupted"), None,
              "interrupted runs are partial" if summary.get("interrupted") else ""),
    ]
    top = {k: v for k, v in slo.items() if k != "ops"}
    if top:
        checks += _checks_for("overall", summary.get("overall", {}), top)
    for op, op_slo in (slo.get("ops") or {}).items():
        block = summary.get("ops", {}).get(op)
        if block is None:
            checks.append(Check(op, "present", None, None, "", False, None, f"no op of kind {op!r} ran"))
            continue
        checks += _checks_for(op, block, op_slo)
    return checks


def compare_runs(current: dict[str, Any], baseline: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE
                 ) -> list[Delta]:
    """Latency higher, or rate lower, than the baseline by more than `tolerance` is a regression."""
    deltas: list[Delta] = []
    blocks = [("overall", current.get("overall", {}), baseline.get("overall", {}))]
    blocks += [(op, current["ops"][op], baseline["ops"][op])
               for op in sorted(set(current.get("ops", {})) & set(baseline.get("ops", {})))]
    for op, cur, base in blocks:
        for key in COMPARED_LATENCIES:
            c = cur.get("response_time_us", {}).get(key)
            b = base.get("response_time_us", {}).get(key)
            ratio = c / b if c is not None and b else None
            deltas.append(Delta(op, f"{key}_ms", b / 1000 if b is not None else None,
                                c / 1000 if c is not None else None, ratio,
                                ratio is not None and ratio > 1 + tolerance, "ms"))
        c, b = cur.get("achieved_rate"), base.get("achieved_rate")
        ratio = c / b if c is not None and b else None
        deltas.append(Delta(op, "achieved_rate", b, c, ratio, ratio is not None and ratio < 1 - tolerance, "ops/s"))
        c, b = cur.get("error_rate", 0.0), base.get("error_rate", 0.0)
        # error rates near zero have no useful ratio: compare absolutely, allowing the tolerance of 1%
        worse = c - b > max(tolerance * b, tolerance / 100)
        deltas.append(Delta(op, "error_rate", b, c, c / b if b else None, worse, "ratio"))
    return deltas


def passed(checks: list[Check], deltas: list[Delta]) -> bool:
    return all(c.passed for c in checks) and not any(d.regression for d in deltas)


def write_junit(path: Path, name: str, checks: list[Check], deltas: list[Delta]) -> None:
    """JUnit XML, one testcase per check and per compared metric, for CI test tabs."""
    cases = ET.Element("testsuite", name=f"edabench.{name}")
    failures = 0
    for c in checks:
        case = ET.SubElement(cases, "testcase", classname=f"slo.{c.op}", name=c.name)
        if not c.passed:
            failures += 1
            msg = f"goal {c.goal} {c.unit}, measured {c.measured} {c.unit}".strip()
            ET.SubElement(case, "failure", message=msg).text = c.detail or msg
    for d in deltas:
        case = ET.SubElement(cases, "testcase", classname=f"baseline.{d.op}", name=d.metric)
        if d.regression:
            failures += 1
            ratio = f"{d.ratio:.3f}" if d.ratio is not None and math.isfinite(d.ratio) else "n/a"
            ET.SubElement(case, "failure", message=f"baseline {d.baseline}, current {d.current}, ratio {ratio}")
    cases.set("tests", str(len(checks) + len(deltas)))
    cases.set("failures", str(failures))
    ET.ElementTree(cases).write(path, encoding="utf-8", xml_declaration=True)
