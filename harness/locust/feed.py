"""Locust's own statistics, fed in bulk from the generator's interval histograms.

Locust's tables and its Charts tab read `environment.stats`; a hosted generator's ops never pass
through Locust's request event, so once a second each interval histogram is added to the op
kind's `StatsEntry` as if Locust had timed those ops itself: bucket by bucket (Locust's own
rounding), one update per bucket, never one event per op. The values are response times from the
intended start, so Locust's charts show what edabench measures, within Locust's rounding (two
significant digits). The warm-up is left out of Locust's numbers, as out of edabench's.

Failures: the interval's timeouts are in the histogram (at their time of expiry) and counted as
failures; errors and ops not sent have no latency and count as requests without a response time
(Locust's `num_none_requests`). An interval report carries those counts for all kinds together,
so they go to the kind's entry when the workload has one kind, else to an "(all kinds)" entry; the
failures table gets every error by kind and error kind from the final books.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from locust import stats as locust_stats

from harness.results.hdr import Sparse, new_histogram, value_table
from harness.results.messages import FinalReport, IntervalReport

ALL_KINDS = "(all kinds)"


@lru_cache(maxsize=1)
def _values_ms() -> np.ndarray:
    """The value (ms) each HDR counts index stands for: its highest equivalent, as the
    percentiles in summary.json."""
    return value_table(new_histogram()) / 1000.0


class LocustFeed:
    """One hosted generator's contribution to Locust's `RequestStats` for one test."""

    def __init__(self, stats: Any, method: str, kinds: list[str], warmup_s: float, start_wall_s: float) -> None:
        self.stats = stats
        self.method = method
        self.failures_to = kinds[0] if len(kinds) == 1 else ALL_KINDS
        self.warmup_s = warmup_s
        self.start_wall_s = start_wall_s

    def interval(self, report: IntervalReport) -> None:
        if report.t < self.warmup_s:
            return
        second = int(self.start_wall_s + report.t)
        end = self.start_wall_s + report.t + 1.0
        for kind, part in report.kinds.items():
            if part.response is not None:
                for entry in (self.stats.get(kind, self.method), self.stats.total):
                    _add_latencies(entry, part.response, second, end)
        counts = report.counts
        no_latency = counts.get("error", 0) + counts.get("not_sent", 0)
        failed = no_latency + counts.get("timeout", 0)
        if failed:
            for entry in (self.stats.get(self.failures_to, self.method), self.stats.total):
                _touch(entry, second, end)
                entry.num_requests += no_latency
                entry.num_none_requests += no_latency
                entry.num_reqs_per_sec[second] += no_latency
                entry.num_failures += failed
                entry.num_fail_per_sec[second] += failed

    def final(self, report: FinalReport) -> None:
        """Failures by kind and error kind into Locust's failures table (the whole run's)."""
        for kind, counts in report.books.items():
            kinds = dict(counts.get("errors") or {})
            if counts.get("timeout"):
                kinds["timeout"] = counts["timeout"]
            for reason, n in (counts.get("not_sent_reasons") or {}).items():
                kinds[f"not_sent:{reason}"] = n
            for error, n in kinds.items():
                _add_error(self.stats, self.method, kind, error, int(n))


def _touch(entry: Any, second: int, end: float) -> None:
    """Locust's own bookkeeping when a new second starts (its 'current' percentiles window)."""
    last = entry.last_request_timestamp
    if entry.use_response_times_cache and last and second > int(last):
        entry._cache_response_times(second - 1)
    entry.last_request_timestamp = max(last or 0.0, end)


def _add_latencies(entry: Any, part: Sparse, second: int, end: float) -> None:
    idx, cnt = part.arrays()
    values = _values_ms()[idx]
    _touch(entry, second, end)
    bucket = locust_stats.bucket_response_time  # looked up each time: Locust lets users replace it
    times = entry.response_times
    for value, n in zip(values.tolist(), cnt.tolist(), strict=True):
        times[bucket(value)] += n
    entry.num_requests += part.total
    entry.num_reqs_per_sec[second] += part.total
    entry.total_response_time += float((values * cnt).sum())
    low, high = part.min / 1000.0, part.max / 1000.0
    entry.min_response_time = low if entry.min_response_time is None else min(entry.min_response_time, low)
    entry.max_response_time = max(entry.max_response_time, high)


def _add_error(stats: Any, method: str, name: str, error: str, n: int) -> None:
    key = locust_stats.StatsError.create_key(method, name, error)
    row = stats.errors.get(key)
    if row is None:
        row = stats.errors[key] = locust_stats.StatsError(method, name, error)
    if n > 0:
        row.occurred()  # sets first and last seen
        row.occurrences += n - 1
