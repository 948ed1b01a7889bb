"""What a run shows while it goes: a live line on a terminal, a plain progress line in CI logs,
and Prometheus metrics (`--metrics-port`) with real histograms.

On a terminal, a rich progress line is redrawn each second. When the output is not a terminal
(a CI log, `> log.txt`), a plain line is printed every 5 s instead, since a redrawn line leaves
nothing readable in a file.
"""

from __future__ import annotations

import time
from typing import Any

from hdrh.histogram import HdrHistogram
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

PLAIN_EVERY_S = 5.0


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
        self.p99_us: int | None = None
        self._last_plain = 0.0
        self._last_line: dict[str, Any] | None = None
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
        p99 = "p99 -" if line["warmup"] or self.p99_us is None else f"p99 {_ms(self.p99_us)}"
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
        self._last_line = line
        if self.progress is not None:
            self.progress.update(self.task, completed=min(line["t"] + 1, self.total_s), status=self.status(line))
            self.progress.refresh()
        elif line["t"] < self.total_s:  # the drain's seconds are not progress
            now = time.monotonic()
            if now - self._last_plain >= PLAIN_EVERY_S:
                self._last_plain = now
                self.console.print(self.status(line), highlight=False, soft_wrap=True)
        if self.metrics is not None:
            self.metrics.update(line)

    def on_histogram(self, name: str, hist: HdrHistogram) -> None:
        if self.metrics is not None:
            self.metrics.observe(name, hist)


# Latency buckets (seconds) for the classic Prometheus histograms: 1-2.5-5 steps from 100 µs to 60 s.
BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
             10.0, 30.0, 60.0)


class PromMetrics:
    """Harness metrics on /metrics, names prefixed edabench_ (see infra/grafana/edabench.json).

    Response time, service time and schedule lag are real histograms (classic buckets), fed from
    the run's exact HDR interval histograms, so `histogram_quantile` works over any window and
    across kinds; a bucket boundary falls within HDR's 0.1% precision of the value it counts."""

    def __init__(self, port: int, registry: Any = None, serve: bool = True) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = registry or CollectorRegistry()
        self.ops = Counter("edabench_ops", "Finished ops by outcome (ok, error, timeout, not_sent)",
                           ["outcome"], registry=self.registry)
        self.in_flight = Gauge("edabench_in_flight", "Ops in flight", registry=self.registry)
        self.target = Gauge("edabench_target_rate", "Target arrival rate (ops/s)", registry=self.registry)
        self._hist = _HdrHistograms()
        self.registry.register(self._hist)
        if serve:
            start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, line: dict[str, Any]) -> None:
        for outcome in ("ok", "error", "timeout", "not_sent"):
            self.ops.labels(outcome).inc(line.get(outcome, 0))
        self.in_flight.set(line["in_flight"])
        self.target.set(line["target_rate"])

    def observe(self, name: str, hist: HdrHistogram) -> None:
        self._hist.add(name, hist)


class _HdrHistograms:
    """A custom collector: cumulative bucket counts per (metric, kind), added from HDR intervals."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self._bounds_us = np.array([b * 1e6 for b in BUCKETS_S])
        self._series: dict[tuple[str, str], list[Any]] = {}  # (metric, kind) -> [bucket counts, count, sum]

    def add(self, name: str, hist: HdrHistogram) -> None:
        np = self._np
        from harness.results.hdr import counts_view, value_table

        if name == "schedule-lag":
            metric, kind = "edabench_schedule_lag_seconds", ""
        elif name.endswith(".response"):
            metric, kind = "edabench_response_time_seconds", name[: -len(".response")]
        elif name.endswith(".service"):
            metric, kind = "edabench_service_time_seconds", name[: -len(".service")]
        else:
            metric, kind = "edabench_observed_seconds", name
        counts = counts_view(hist)
        nz = np.flatnonzero(counts)
        if not nz.size:
            return
        values = value_table(hist)[nz]  # the highest value each bucket stands for
        per = counts[nz]
        le_index = np.searchsorted(self._bounds_us, values, side="left")  # first bound >= value
        buckets = np.bincount(le_index, weights=per, minlength=len(self._bounds_us) + 1)[: len(self._bounds_us)]
        entry = self._series.setdefault((metric, kind), [np.zeros(len(self._bounds_us)), 0, 0.0])
        entry[0] += buckets
        entry[1] += int(per.sum())
        entry[2] += float((values * per).sum()) / 1e6

    def collect(self) -> Any:
        from prometheus_client.core import HistogramMetricFamily

        help_text = {
            "edabench_response_time_seconds": "Response time from the intended start, by op kind",
            "edabench_service_time_seconds": "Service time from the actual send, by op kind",
            "edabench_schedule_lag_seconds": "Actual send minus intended send",
            "edabench_observed_seconds": "Extra latencies reported by the target's driver, by metric",
        }
        families: dict[str, Any] = {}
        for (metric, kind), (buckets, count, total) in sorted(self._series.items()):
            labels = [] if metric == "edabench_schedule_lag_seconds" else ["kind"]
            fam = families.get(metric)
            if fam is None:
                fam = families[metric] = HistogramMetricFamily(metric, help_text[metric], labels=labels)
            cum = self._np.cumsum(buckets)
            points = [(f"{b:g}", float(c)) for b, c in zip(BUCKETS_S, cum, strict=True)] + [("+Inf", float(count))]
            fam.add_metric([kind] if labels else [], points, total)
        yield from families.values()
