"""The books of one generator process: every scheduled op ends as exactly one outcome.

ok, error (with its kind), timeout, or not-sent (with its reason). Counters are kept per op kind
in plain lists indexed by a small integer, so the scheduler's hot path can update them without a
method call; everything else (the final report, the balance check, merging) is behaviour here,
used by every front end.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.recorder import Recorder

OUTCOMES = ("ok", "error", "timeout", "not_sent")


class Books:
    """Per-kind counts and latency recorders of one process. Kinds are added as they appear."""

    def __init__(self, kinds: list[str] | tuple[str, ...] = ()) -> None:
        self.names: list[str] = []
        self.index: dict[str, int] = {}
        # all-time counts (warm-up included) and the measured window's, per kind index
        self.scheduled: list[int] = []
        self.ok: list[int] = []
        self.error: list[int] = []
        self.timeout: list[int] = []
        self.not_sent: list[int] = []
        self.warmup: list[int] = []
        self.m_scheduled: list[int] = []
        self.m_ok: list[int] = []
        self.m_error: list[int] = []
        self.m_timeout: list[int] = []
        self.m_not_sent: list[int] = []
        self.errors: list[Counter[str]] = []
        self.not_sent_reasons: list[Counter[str]] = []
        self.response: list[Recorder] = []
        self.service: list[Recorder] = []
        for kind in kinds:
            self.kind(kind)

    def kind(self, name: str) -> int:
        """The index of kind `name`, added on first sight."""
        k = self.index.get(name)
        if k is not None:
            return k
        k = self.index[name] = len(self.names)
        self.names.append(name)
        for counts in (self.scheduled, self.ok, self.error, self.timeout, self.not_sent, self.warmup,
                       self.m_scheduled, self.m_ok, self.m_error, self.m_timeout, self.m_not_sent):
            counts.append(0)
        self.errors.append(Counter())
        self.not_sent_reasons.append(Counter())
        self.response.append(Recorder())
        self.service.append(Recorder())
        return k

    # -- outcomes, for callers off the hot path -------------------------------------------------
    def schedule(self, k: int, measured: bool) -> None:
        self.scheduled[k] += 1
        if measured:
            self.m_scheduled[k] += 1
        else:
            self.warmup[k] += 1

    def record_ok(self, k: int, measured: bool, response_us: int, service_us: int) -> None:
        self.ok[k] += 1
        if measured:
            self.m_ok[k] += 1
            self.response[k].add(response_us)
            self.service[k].add(service_us)

    def record_error(self, k: int, measured: bool, kind: str) -> None:
        self.error[k] += 1
        self.errors[k][kind] += 1
        if measured:
            self.m_error[k] += 1

    def record_timeout(self, k: int, measured: bool, response_us: int, service_us: int) -> None:
        """A timed-out op counts in the latency at its time of expiry (>= the timeout): a system
        slower than the timeout cannot pass a latency goal by timing out."""
        self.timeout[k] += 1
        if measured:
            self.m_timeout[k] += 1
            self.response[k].add(response_us)
            self.service[k].add(service_us)

    def record_not_sent(self, k: int, measured: bool, reason: str) -> None:
        self.not_sent[k] += 1
        self.not_sent_reasons[k][reason] += 1
        if measured:
            self.m_not_sent[k] += 1

    # -- reading --------------------------------------------------------------------------------
    def totals(self) -> dict[str, int]:
        """Process-wide counts by outcome (and scheduled, sent), all kinds together."""
        out = {"scheduled": sum(self.scheduled), "ok": sum(self.ok), "error": sum(self.error),
               "timeout": sum(self.timeout), "not_sent": sum(self.not_sent)}
        out["sent"] = out["scheduled"] - out["not_sent"]
        return out

    def kind_counts(self, k: int) -> dict[str, Any]:
        return {
            "scheduled": self.scheduled[k],
            "ok": self.ok[k],
            "error": self.error[k],
            "timeout": self.timeout[k],
            "not_sent": self.not_sent[k],
            "errors": dict(self.errors[k]),
            "not_sent_reasons": dict(self.not_sent_reasons[k]),
            "warmup": self.warmup[k],
            "measured": {
                "scheduled": self.m_scheduled[k],
                "ok": self.m_ok[k],
                "error": self.m_error[k],
                "timeout": self.m_timeout[k],
                "not_sent": self.m_not_sent[k],
            },
        }

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {name: self.kind_counts(k) for k, name in enumerate(self.names)}

    def balanced(self) -> bool:
        return all(balanced(self.kind_counts(k)) for k in range(len(self.names)))


def add_counts(into: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """Sum two `kind_counts()` results (across processes or kinds)."""
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
    """The books balance when every scheduled op has exactly one outcome (measured window too)."""
    m = counts["measured"]
    return (counts["scheduled"] == counts["ok"] + counts["error"] + counts["timeout"] + counts["not_sent"]
            and m["scheduled"] == m["ok"] + m["error"] + m["timeout"] + m["not_sent"]
            and counts["scheduled"] == m["scheduled"] + counts["warmup"])
