"""Per-kind accounting: every scheduled op ends as ok, error, timeout or not-sent."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.recorder import LatencyBuffer


class KindBooks:
    """Counters and latency buffers of one op kind inside one generator process.

    Fields prefixed `m_` count only measured ops (intended after the warm-up), so that
    rates and error rates are computed on the same window as the latency statistics.
    """

    __slots__ = (
        "error",
        "errors",
        "kind",
        "m_error",
        "m_not_sent",
        "m_ok",
        "m_scheduled",
        "m_timeout",
        "not_sent",
        "not_sent_reasons",
        "ok",
        "response",
        "scheduled",
        "service",
        "timeout",
        "warmup",
    )

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.scheduled = self.ok = self.error = self.timeout = self.not_sent = self.warmup = 0
        self.m_scheduled = self.m_ok = self.m_error = self.m_timeout = self.m_not_sent = 0
        self.errors: Counter[str] = Counter()
        self.not_sent_reasons: Counter[str] = Counter()
        self.response = LatencyBuffer()
        self.service = LatencyBuffer()

    def as_dict(self) -> dict[str, Any]:
        return {
            "scheduled": self.scheduled,
            "ok": self.ok,
            "error": self.error,
            "timeout": self.timeout,
            "not_sent": self.not_sent,
            "errors": dict(self.errors),
            "not_sent_reasons": dict(self.not_sent_reasons),
            "warmup": self.warmup,
            "measured": {
                "scheduled": self.m_scheduled,
                "ok": self.m_ok,
                "error": self.m_error,
                "timeout": self.m_timeout,
                "not_sent": self.m_not_sent,
            },
        }


def add_counts(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Sum two `as_dict()` results (across processes or kinds)."""
    if not into:
        return {
            **{k: v for k, v in other.items() if not isinstance(v, dict)},
            "errors": dict(other["errors"]),
            "not_sent_reasons": dict(other["not_sent_reasons"]),
            "measured": dict(other["measured"]),
        }
    for key in ("scheduled", "ok", "error", "timeout", "not_sent", "warmup"):
        into[key] += other[key]
    for key in ("errors", "not_sent_reasons"):
        for name, n in other[key].items():
            into[key][name] = into[key].get(name, 0) + n
    for key, n in other["measured"].items():
        into["measured"][key] = into["measured"].get(key, 0) + n
    return into


def balanced(counts: dict[str, Any]) -> bool:
    """The books balance when every scheduled op has exactly one outcome."""
    return counts["scheduled"] == counts["ok"] + counts["error"] + counts["timeout"] + counts["not_sent"]
