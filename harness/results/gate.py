"""The gate's rules, in one place: SLO and integrity checks on a run, and the exit codes.

The HTML report reads these same functions, so a report and `edabench gate` never disagree on
what passed. Exit codes a CI script can branch on (`exit_code` returns the first that applies,
in this order):

    4  the run cannot be trusted: books do not balance, verification found problems, nothing
       ran, or the generator fell behind its schedule
    130 interrupted (Ctrl-C): the run is partial, its goals are not judged
    1  an SLO goal was missed
    3  a regression against the baseline
    0  pass

    2  usage error (bad spec or arguments, runs that cannot be compared): the CLI's, before any verdict
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

PASS, SLO_BREACH, USAGE, REGRESSION, UNTRUSTED, INTERRUPTED = 0, 1, 2, 3, 4, 130
LATENCY_GOALS = {
    "p50_ms": "p50",
    "p90_ms": "p90",
    "p95_ms": "p95",
    "p99_ms": "p99",
    "p999_ms": "p99_9",
    "max_ms": "max",
}
INTEGRITY = ("books_balanced", "verify", "not_empty", "generator_kept_up")


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

    @property
    def integrity(self) -> bool:
        return self.op == "run" and self.name in INTEGRITY


class Regression(Protocol):
    """A baseline comparison (harness.results.baseline.Comparison)."""

    op: str
    metric: str
    regression: bool


def load_summary(run_dir: str | Path) -> dict[str, Any]:
    """summary.json of a run directory (or a summary.json path)."""
    p = Path(run_dir)
    if p.is_dir():
        p = p / "summary.json"
    if not p.exists():
        raise FileNotFoundError(f"{p}: no summary.json (is this a run directory?)")
    return orjson.loads(p.read_bytes())


def _upper(op: str, name: str, goal: float, measured: float | None, unit: str) -> Check:
    if measured is None:
        return Check(op, name, goal, None, unit, False, None, "no samples")
    margin = (goal - measured) / goal if goal else None
    return Check(op, name, goal, measured, unit, measured <= goal, margin)


def _checks_for(op: str, block: dict[str, Any], slo: dict[str, Any], latencies: dict[str, Any] | None = None
                ) -> list[Check]:
    out: list[Check] = []
    for goal_key, pkey in LATENCY_GOALS.items():
        goal = slo.get(goal_key)
        if goal is None:
            continue
        us = (block.get("response_time_us", {}) if latencies is None else latencies).get(pkey)
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


def _integrity(summary: dict[str, Any]) -> list[Check]:
    problems = summary.get("verify", {}).get("problems", [])
    checks = [
        Check("run", "books_balanced", None, None, "", bool(summary.get("books_balanced")), None,
              "every scheduled op has exactly one outcome"),
        Check("run", "verify", None, float(len(problems)), "problems", not problems, None, "; ".join(problems[:5])),
        Check("run", "not_empty", None, None, "", not summary.get("empty"), None,
              "no op was scheduled in the measured window" if summary.get("empty") else ""),
        Check("run", "complete", None, None, "", not summary.get("interrupted"), None,
              "interrupted runs are partial" if summary.get("interrupted") else ""),
    ]
    gen = summary.get("generator") or {}
    if gen.get("checked", True) and "kept_up" in gen:
        lag = gen.get("schedule_lag_p99_ms")
        goal = gen.get("max_schedule_lag_ms")
        detail = "" if gen["kept_up"] else (
            f"the generator fell behind its schedule: schedule-lag p99 {lag} ms > {goal} ms "
            f"({gen.get('intervals_behind_count', 0)} seconds behind); the numbers measure the generator")
        checks.append(Check("run", "generator_kept_up", goal, lag, "ms", bool(gen["kept_up"]), None, detail))
    return checks


def evaluate_slos(summary: dict[str, Any], slo: dict[str, Any] | None = None) -> list[Check]:
    """Every goal of the spec's [slo] table, plus the run's own integrity checks."""
    slo = summary.get("slo", {}) if slo is None else slo
    checks = _integrity(summary)
    top = {k: v for k, v in slo.items() if k not in ("ops", "observed", "max_schedule_lag_ms", "check_generator")}
    if top:
        checks += _checks_for("overall", summary.get("overall", {}), top)
    for op, op_slo in (slo.get("ops") or {}).items():
        block = summary.get("ops", {}).get(op)
        if block is None:
            checks.append(Check(op, "present", None, None, "", False, None, f"no op of kind {op!r} ran"))
            continue
        checks += _checks_for(op, block, op_slo)
    for metric, goals in (slo.get("observed") or {}).items():
        latencies = (summary.get("observed_us") or {}).get(metric)
        if not latencies or not latencies.get("count"):
            checks.append(Check(metric, "present", None, None, "", False, None, f"no {metric!r} sample was observed"))
            continue
        checks += _checks_for(metric, {}, goals, latencies)
    return checks


def exit_code(checks: list[Check], regressions: list[Any] | None = None) -> int:
    """The one exit code for a verdict (see the module docstring for their order)."""
    failed = [c for c in checks if not c.passed]
    if any(c.integrity for c in failed):
        return UNTRUSTED
    if any(c.name == "complete" for c in failed):
        return INTERRUPTED
    if failed:
        return SLO_BREACH
    if any(r.regression for r in regressions or ()):
        return REGRESSION
    return PASS


def passed(checks: list[Check], regressions: list[Any] | None = None) -> bool:
    return exit_code(checks, regressions) == PASS


def verdict_json(checks: list[Check], regressions: list[Any] | None = None) -> dict[str, Any]:
    """The verdict as plain data (for `--json` and CI scripts)."""
    code = exit_code(checks, regressions)
    return {
        "exit_code": code,
        "passed": code == PASS,
        "checks": [{"op": c.op, "check": c.name, "goal": c.goal, "measured": c.measured, "unit": c.unit,
                    "passed": c.passed, "margin": c.margin, "detail": c.detail} for c in checks],
        "baseline": [{k: getattr(r, k) for k in ("op", "metric", "baseline", "current", "ratio", "p_value",
                                                   "regression", "unit", "detail") if hasattr(r, k)}
                     for r in regressions or ()],
    }


# -- a quick summary-to-summary comparison (the report's overlay table); the gate's baseline
#    verdict is the statistical one in harness.results.baseline -------------------------------
COMPARED_LATENCIES = ("p50", "p99", "p99_9", "max")
DEFAULT_TOLERANCE = 0.10


@dataclass(frozen=True)
class Delta:
    op: str
    metric: str
    baseline: float | None
    current: float | None
    ratio: float | None
    regression: bool
    unit: str


def compare_summaries(current: dict[str, Any], baseline: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE
                      ) -> list[Delta]:
    """Relative change of each percentile and rate between two summaries, flagged beyond `tolerance`."""
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
        worse = c - b > max(tolerance * b, tolerance / 100)
        deltas.append(Delta(op, "error_rate", b, c, c / b if b else None, worse, "ratio"))
    return deltas
