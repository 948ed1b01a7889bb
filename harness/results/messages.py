"""What generator processes tell the collector: one interval report a second, one final report.

Typed, so that the asyncio generator, its worker processes and Locust's workers all send the same
thing; `to_wire` / `from_wire` turn them into plain dicts of bytes, numbers and strings for
transports that cannot pickle (Locust's msgpack).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.results.hdr import Sparse

COUNT_KEYS = ("scheduled", "sent", "ok", "error", "timeout", "not_sent")


@dataclass(slots=True)
class KindInterval:
    response: Sparse | None = None
    service: Sparse | None = None


@dataclass(slots=True)
class IntervalReport:
    """One process's second `t` (seconds since the schedule's start; the warm-up included)."""

    process: int
    t: int
    final: bool  # the last, partial interval of this process
    counts: dict[str, int]  # COUNT_KEYS: ops that reached that state during the interval
    in_flight: int
    kinds: dict[str, KindInterval] = field(default_factory=dict)
    lag: Sparse | None = None  # schedule lag: actual send - intended
    extra: dict[str, Sparse] = field(default_factory=dict)  # Completions.observe
    gauges: dict[str, float] = field(default_factory=dict)  # Completions.gauge
    # per op kind: ops that reached each outcome (ok, error, timeout, not_sent) during the interval;
    # only kinds with a change (the live metrics' counter by kind and outcome)
    kind_counts: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass(slots=True)
class FinalReport:
    """A process's books once its schedule and drain are over."""

    process: int
    books: dict[str, dict[str, Any]]  # kind -> Books.kind_counts()
    late: int = 0  # completions for ops already finished or unknown
    problems: list[str] = field(default_factory=list)
    interrupted: bool = False  # the schedule was cut short
    pids: dict[str, int] = field(default_factory=dict)
    expected: dict[str, int] = field(default_factory=dict)  # Completions.expect: deliveries owed per metric
    schedule_end_ns: int = 0  # monotonic: when the last op was due (or the stop came)
    cpu_s: float = 0.0  # CPU time of the generator's process over its run (schedule and drain)


def _sparse_wire(s: Sparse | None) -> list[Any] | None:
    return None if s is None else [s.index, s.count, s.total, s.min, s.max, s.clipped]


def _sparse_unwire(w: list[Any] | None) -> Sparse | None:
    return None if w is None else Sparse(bytes(w[0]), bytes(w[1]), int(w[2]), int(w[3]), int(w[4]), int(w[5]))


def to_wire(report: IntervalReport | FinalReport) -> dict[str, Any]:
    if isinstance(report, FinalReport):
        return {"type": "final", "process": report.process, "books": report.books, "late": report.late,
                "problems": report.problems, "interrupted": report.interrupted, "pids": report.pids,
                "expected": report.expected, "schedule_end_ns": report.schedule_end_ns, "cpu_s": report.cpu_s}
    return {
        "type": "interval", "process": report.process, "t": report.t, "final": report.final,
        "counts": report.counts, "in_flight": report.in_flight,
        "kinds": {k: [_sparse_wire(v.response), _sparse_wire(v.service)] for k, v in report.kinds.items()},
        "lag": _sparse_wire(report.lag), "extra": {k: _sparse_wire(v) for k, v in report.extra.items()},
        "gauges": report.gauges, "kind_counts": report.kind_counts,
    }


def from_wire(data: dict[str, Any]) -> IntervalReport | FinalReport:
    if data["type"] == "final":
        return FinalReport(int(data["process"]), data["books"], int(data["late"]), list(data["problems"]),
                           bool(data["interrupted"]), dict(data["pids"]), dict(data.get("expected") or {}),
                           int(data.get("schedule_end_ns") or 0), float(data.get("cpu_s") or 0.0))
    kinds = {k: KindInterval(_sparse_unwire(v[0]), _sparse_unwire(v[1])) for k, v in data["kinds"].items()}
    extra = {k: s for k, v in data["extra"].items() if (s := _sparse_unwire(v)) is not None}
    return IntervalReport(int(data["process"]), int(data["t"]), bool(data["final"]), dict(data["counts"]),
                          int(data["in_flight"]), kinds, _sparse_unwire(data["lag"]), extra, dict(data["gauges"]),
                          dict(data.get("kind_counts") or {}))
