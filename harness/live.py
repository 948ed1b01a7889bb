"""What a run shows while it goes: a live line on a terminal, a plain progress line in CI logs,
and Prometheus metrics (`--metrics-port`) with real histograms.

On a terminal, a rich progress line is redrawn each second. When the output is not a terminal
(a CI log, `> log.txt`), a plain line is printed after the first second, every 5 s of the schedule
and at its last second instead, since a redrawn line leaves nothing readable in a file. Both say the
last second's p99 (worst kind) and the measured window's so far (all kinds).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from harness.books import OUTCOMES
from harness.results.hdr import add, new_histogram, values_at

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

PLAIN_EVERY_S = 5  # seconds of the schedule between two plain progress lines


def _ms(us: float | None) -> str:
    return "-" if us is None else f"{us / 1000:.1f} ms"


class LiveView:
    """Fed one timeseries line per second (and each interval histogram) by the collector."""

    def __init__(self, total_s: float, console: Console | None = None, metrics_port: int | None = None,
                 plain: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.total_s = total_s
        self.plain = (not self.console.is_terminal) if plain is None else plain
        self.progress: Progress | None = None
        if not self.plain:
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=20),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                console=self.console,
                transient=False,
                auto_refresh=False,  # a refresh thread would take the GIL from the generator 10 times a second
            )
            self.task = self.progress.add_task("run", total=total_s, status="starting")
        self.errors = 0
        self.timeouts = 0
        self.p99_us: int | None = None  # the last measured second's, worst kind
        self.run_p99_us: int | None = None  # the measured window's so far, all kinds together
        self._measured = new_histogram()  # every kind's response times so far (the measured window)
        self.metrics = PromMetrics(metrics_port) if metrics_port else None

    def __enter__(self) -> LiveView:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def status(self, line: dict[str, Any]) -> str:
        phase = "warm-up" if line["warmup"] else "measure"
        achieved = line.get("ok", 0) + line.get("error", 0)
        lag = line.get("lag_p99_us")
        if line["warmup"] or self.p99_us is None:
            p99 = "p99 -"
        else:
            p99 = f"p99 {_ms(self.p99_us)} (run {_ms(self.run_p99_us)})"
        return (f"{phase} {line['t'] + 1:.0f}/{self.total_s:.0f}s  target {line['target_rate']:.0f}/s  "
                f"achieved {achieved}/s  {p99}  errors {self.errors}  timeouts {self.timeouts}  "
                f"lag p99 {_ms(lag)}  in-flight {line['in_flight']}")

    def on_interval(self, line: dict[str, Any]) -> None:
        self.errors += line.get("error", 0) + line.get("not_sent", 0)
        self.timeouts += line.get("timeout", 0)
        if not line["warmup"]:
            p99s = [o["p99_us"] for o in line["ops"].values()]
            if p99s:
                self.p99_us = max(p99s)
            if self._measured.total_count:
                self.run_p99_us = values_at(self._measured, (99.0,))[0]
        if self.progress is not None:
            self.progress.update(self.task, completed=min(line["t"] + 1, self.total_s), status=self.status(line))
            self.progress.refresh()
        elif self._plain_due(line["t"]):
            self.console.print(self.status(line), highlight=False, soft_wrap=True)
        if self.metrics is not None:
            self.metrics.update(line)

    def _plain_due(self, t: int) -> bool:
        """A plain line after the schedule's first second, every PLAIN_EVERY_S seconds, and its last
        second; by the schedule's clock, so a late second delays its line without skipping one.
        The drain's seconds (after the schedule) are not progress."""
        done = t + 1
        return t < self.total_s and (done == 1 or done % PLAIN_EVERY_S == 0 or done >= self.total_s)

    def on_histogram(self, name: str, hist: HdrHistogram) -> None:
        if name.endswith(".response"):  # only the measured window has response times
            add(self._measured, hist)
        if self.metrics is not None:
            self.metrics.observe(name, hist)


# Latency buckets (seconds) of the classic Prometheus histograms: four per decade from 1 ms to 10 s
# (10^(k/4) to two significant digits: 1, 1.8, 3.2, 5.6), so every bucket spans a factor of at most 1.8 and
# "within one bucket" means the same thing at 2 ms as at 2 s; plus 30 s for ops that time out (they count
# at their time of expiry). 18 bounds: each (metric, kind) costs 21 series (the buckets, +Inf, _sum, _count).
BUCKETS_S = (0.001, 0.0018, 0.0032, 0.0056, 0.01, 0.018, 0.032, 0.056, 0.1, 0.18, 0.32, 0.56, 1.0, 1.8, 3.2, 5.6,
             10.0, 30.0)
ALL_KINDS = "(all kinds)"  # the ops counter's kind when a report carries no per-kind counts


class PromMetrics:
    """Harness metrics on /metrics, names prefixed edabench_ (see infra/grafana/edabench.json).

    - `edabench_ops_total{kind, outcome}`: ops finished, warm-up included (the run's books).
    - `edabench_in_flight`, `edabench_target_rate`: gauges, one value per second.
    - `edabench_response_time_seconds{kind}`, `edabench_service_time_seconds{kind}`,
      `edabench_schedule_lag_seconds`, `edabench_observed_seconds{metric}`: histograms (classic
      buckets, BUCKETS_S), fed from the run's exact HDR interval histograms, so `histogram_quantile`
      works over any window and across kinds. Latencies count the measured window only (as the
      report's percentiles); the schedule lag counts every second. Each HDR bucket goes to the first
      bound at or above its highest equivalent value, as summary.json's percentiles report it.

    A kind's series are created at zero when the kind is first seen (the first second, warm-up
    included), so `rate()` and `increase()` over a window that holds their start count from zero.
    """

    def __init__(self, port: int, registry: Any = None, serve: bool = True) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = registry or CollectorRegistry()
        self.ops = _OpsCounter()  # a collector of its own: no `_created` series beside each count
        self.registry.register(self.ops)
        self.in_flight = Gauge("edabench_in_flight", "Ops sent and not finished yet", registry=self.registry)
        self.target = Gauge("edabench_target_rate", "Target arrival rate of the schedule, in ops per second "
                            "(0 once the schedule is over)", registry=self.registry)
        self._hist = _HdrHistograms()
        self.registry.register(self._hist)
        if serve:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, line: dict[str, Any]) -> None:
        """One timeseries line (one second of the run)."""
        per_kind: dict[str, dict[str, int]] | None = line.get("kind_counts")
        if per_kind is None:  # a report without per-kind counts: all kinds together
            per_kind = {ALL_KINDS: {outcome: line.get(outcome, 0) for outcome in OUTCOMES}}
        for kind, counts in per_kind.items():
            if self.ops.add(kind, counts) and kind != ALL_KINDS:  # a new kind: its latency series too
                self._hist.declare(kind)
        self.in_flight.set(line["in_flight"])
        self.target.set(line["target_rate"])

    def observe(self, name: str, hist: HdrHistogram) -> None:
        """One interval histogram, by its log name ("<kind>.response", "<kind>.service",
        "schedule-lag", or an observed metric)."""
        self._hist.add(name, hist)


class _OpsCounter:
    """`edabench_ops_total{kind, outcome}`: a custom collector, fed the per-second counts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}

    def add(self, kind: str, counts: dict[str, int]) -> bool:
        """Add one second's counts of a kind; True when the kind is new (all its outcomes start at 0)."""
        with self._lock:
            new = kind not in self._counts
            into = self._counts.setdefault(kind, dict.fromkeys(OUTCOMES, 0))
            for outcome in OUTCOMES:
                into[outcome] += counts.get(outcome, 0)
        return new

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily("edabench_ops", "Ops finished, by op kind and outcome (ok, error, timeout, "
                                  "not_sent); warm-up included", labels=["kind", "outcome"])
        with self._lock:
            for kind, counts in sorted(self._counts.items()):
                for outcome, n in counts.items():
                    fam.add_metric([kind, outcome], float(n))
        yield fam


RESPONSE, SERVICE = "edabench_response_time_seconds", "edabench_service_time_seconds"
LAG, OBSERVED = "edabench_schedule_lag_seconds", "edabench_observed_seconds"
_HELP = {
    RESPONSE: "Response time (completion minus intended start), by op kind; measured window only",
    SERVICE: "Service time (completion minus actual send), by op kind; measured window only",
    LAG: "Schedule lag (actual send minus intended send) of every op sent, warm-up included",
    OBSERVED: "Latencies observed by the target's driver, by metric name; measured window only",
}
_LABEL = {RESPONSE: "kind", SERVICE: "kind", LAG: None, OBSERVED: "metric"}


class _HdrHistograms:
    """A custom collector: cumulative bucket counts per (metric, label value), added from HDR intervals."""

    def __init__(self) -> None:
        import numpy as np
        from prometheus_client.utils import floatToGoString

        self._np = np
        self._bounds_us = np.array([b * 1e6 for b in BUCKETS_S])
        self._le = [floatToGoString(b) for b in BUCKETS_S]
        self._lock = threading.Lock()  # scrapes read from the HTTP server's thread
        self._series: dict[tuple[str, str], list[Any]] = {}  # (metric, label) -> [bucket counts, count, sum]
        self._entry(LAG, "")

    def _entry(self, metric: str, label: str) -> list[Any]:
        entry = self._series.get((metric, label))
        if entry is None:
            entry = self._series[(metric, label)] = [self._np.zeros(len(BUCKETS_S), dtype=self._np.int64), 0, 0.0]
        return entry

    def declare(self, kind: str) -> None:
        """A kind's response and service time series, at zero."""
        with self._lock:
            self._entry(RESPONSE, kind)
            self._entry(SERVICE, kind)

    def add(self, name: str, hist: HdrHistogram) -> None:
        np = self._np
        from harness.results.hdr import counts_view, value_table

        if name == "schedule-lag":
            metric, label = LAG, ""
        elif name.endswith(".response"):
            metric, label = RESPONSE, name.removesuffix(".response")
        elif name.endswith(".service"):
            metric, label = SERVICE, name.removesuffix(".service")
        else:
            metric, label = OBSERVED, name
        counts = counts_view(hist)
        nz = np.flatnonzero(counts)
        if not nz.size:
            return
        values = value_table(hist)[nz]  # the highest value each HDR bucket stands for (µs)
        per = counts[nz].astype(np.int64)
        le_index = np.searchsorted(self._bounds_us, values, side="left")  # the first bound >= value
        buckets = np.bincount(le_index, weights=per, minlength=len(BUCKETS_S) + 1)[: len(BUCKETS_S)]
        with self._lock:
            entry = self._entry(metric, label)
            entry[0] += buckets.astype(np.int64)
            entry[1] += int(per.sum())
            entry[2] += float((values * per).sum()) / 1e6

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import HistogramMetricFamily

        with self._lock:
            snapshot = [(metric, label, entry[0].cumsum().tolist(), entry[1], entry[2])
                        for (metric, label), entry in sorted(self._series.items())]
        families: dict[str, HistogramMetricFamily] = {}
        for metric, label, cumulative, count, total in snapshot:
            label_name = _LABEL[metric]
            fam = families.get(metric)
            if fam is None:
                fam = families[metric] = HistogramMetricFamily(metric, _HELP[metric],
                                                               labels=[label_name] if label_name else [])
            points = [*zip(self._le, map(float, cumulative), strict=True), ("+Inf", float(count))]
            fam.add_metric([label] if label_name else [], points, total)
        yield from families.values()
