"""summary.json: what a run measured and whether its books and its generator can be trusted.

See docs/results.md for the schema. Latencies are response times from the intended start; a
timed-out op counts in them at its time of expiry. `generator` says whether the generator kept
its schedule: a run whose generator fell behind measured the generator, not the system.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram

from harness.books import add_counts, balanced
from harness.results.collector import Collector
from harness.results.hdr import add, new_histogram, stats
from harness.results.messages import FinalReport

SCHEMA = "edabench.summary/2"


def _op_block(counts: dict[str, Any], resp: HdrHistogram, svc: HdrHistogram, measured_s: float) -> dict[str, Any]:
    m = counts["measured"]
    target = m["scheduled"] / measured_s
    achieved = m["ok"] / measured_s
    failed = m["error"] + m["timeout"] + m.get("not_sent", 0)  # an op not sent is not a success
    return {
        "counts": counts,
        "target_rate": round(target, 3),
        "achieved_rate": round(achieved, 3),
        "error_rate": round(failed / m["scheduled"], 6) if m["scheduled"] else 0.0,
        "timeout_share": round(m["timeout"] / m["scheduled"], 6) if m["scheduled"] else 0.0,
        "response_time_us": stats(resp),
        "service_time_us": stats(svc),
    }


def generator_verdict(collector: Collector, max_lag_ms: float, checked: bool, cpu_s: float = 0.0,
                      sent: int = 0) -> dict[str, Any]:
    """Did the generator send on schedule? From the measured window's schedule lag."""
    lag = stats(collector.measured_lag)
    behind = [t for t, p99 in collector.lag_intervals if p99 > max_lag_ms * 1000]
    p99 = lag.get("p99")
    kept_up = p99 is None or p99 <= max_lag_ms * 1000
    return {
        "kept_up": bool(kept_up),
        "checked": checked,
        "max_schedule_lag_ms": max_lag_ms,
        "schedule_lag_p99_ms": None if p99 is None else round(p99 / 1000, 3),
        "intervals_behind": behind[:100],
        "intervals_behind_count": len(behind),
        "cpu_s": round(cpu_s, 3),
        "cpu_us_per_op": round(cpu_s / sent * 1e6, 2) if sent else None,
    }


def build_summary(name: str, collector: Collector, finals: list[FinalReport], processes: int,
                  measured_s: float, slo: dict[str, Any], interrupted: bool, max_lag_ms: float,
                  check_generator: bool, extra_problems: list[str] | None = None) -> dict[str, Any]:
    counts_by_kind: dict[str, dict[str, Any]] = {}
    problems: list[str] = list(extra_problems or [])
    late = 0
    expected: dict[str, int] = {}
    for final in finals:
        late += final.late
        problems.extend(p for p in final.problems if p not in problems)
        for metric, n in final.expected.items():
            expected[metric] = expected.get(metric, 0) + n
        for kind, counts in final.books.items():
            counts_by_kind[kind] = add_counts(counts_by_kind.get(kind, {}), counts)
    missing = processes - len(finals)
    if missing:
        problems.append(f"{missing} generator process(es) did not report their books")
    measured_s = max(measured_s, 1e-9)
    ops: dict[str, Any] = {}
    overall_counts: dict[str, Any] = {}
    overall_resp, overall_svc = new_histogram(), new_histogram()
    for kind in sorted(counts_by_kind):
        counts = counts_by_kind[kind]
        overall_counts = add_counts(overall_counts, counts)
        resp, svc = collector.total(f"{kind}.response"), collector.total(f"{kind}.service")
        add(overall_resp, resp)
        add(overall_svc, svc)
        ops[kind] = _op_block(counts, resp, svc, measured_s)
    overall = _op_block(overall_counts, overall_resp, overall_svc, measured_s) if overall_counts else {}
    empty = not counts_by_kind or not overall_counts.get("scheduled")
    books_ok = all(balanced(c) for c in counts_by_kind.values()) and not missing
    observed = {m: stats(collector.total(m)) for m in collector.metrics()}
    sent = int(overall_counts.get("scheduled", 0)) - int(overall_counts.get("not_sent", 0))
    deliveries = {}
    for metric, n in sorted(expected.items()):
        seen = int(observed.get(metric, {}).get("count", 0))
        deliveries[metric] = {"expected": n, "observed": seen, "missing": max(0, n - seen)}
        if seen < n:
            problems.append(f"{metric}: {n - seen} of {n} expected deliveries never arrived")
    return {
        "schema": SCHEMA,
        "name": name,
        "closed_loop": False,
        "interrupted": interrupted,
        "empty": empty,
        "books_balanced": books_ok,
        "measured_s": round(measured_s, 3),
        "processes": processes,
        "late_completions": late,
        "clipped_samples": collector.clipped,
        "ops": ops,
        "overall": overall,
        "schedule_lag_us": stats(collector.measured_lag),
        "generator": generator_verdict(collector, max_lag_ms, check_generator, sum(f.cpu_s for f in finals), sent),
        "observed_us": observed,
        "deliveries": deliveries,
        "verify": {"problems": problems},
        "slo": slo,
    }
