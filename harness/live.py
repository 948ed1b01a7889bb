"""Live view of a run: a rich progress line and, optionally, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class LiveView:
    """Fed one timeseries line per second by the collector."""

    def __init__(self, total_s: float, console: Console | None = None, metrics_port: int | None = None
                 ) -> None:
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=False,
            auto_refresh=False,  # a refresh thread would take the GIL from the generator 10 times a second
        )
        self.task = self.progress.add_task("run", total=total_s, status="starting")
        self.errors = 0
        self.p99 = 0
        self.metrics = PromMetrics(metrics_port) if metrics_port else None

    def __enter__(self) -> LiveView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_interval(self, line: dict[str, Any]) -> None:
        self.errors += line.get("error", 0) + line.get("timeout", 0) + line.get("not_sent", 0)
        p99s = [o["p99_us"] for o in line["ops"].values()]
        if p99s:
            self.p99 = max(p99s)
        phase = "warm-up" if line["warmup"] else "measure"
        achieved = line.get("ok", 0) + line.get("error", 0)
        status = (
            f"{phase}  target {line['target_rate']:.0f}/s  achieved {achieved}/s  "
            f"p99 {self.p99 / 1000:.1f} ms  in-flight {line['in_flight']}  errors {self.errors}"
        )
        self.progress.update(self.task, completed=line["t"] + 1, status=status)
        self.progress.refresh()
        if self.metrics is not None:
            self.metrics.update(line)


class PromMetrics:
    """Harness metrics on /metrics; names are prefixed edabench_ (see infra/grafana)."""

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.ops = Counter("edabench_ops", "Ops by kind and outcome", ["outcome"], registry=self.registry)
        self.in_flight = Gauge("edabench_in_flight", "Ops in flight", registry=self.registry)
        self.target = Gauge("edabench_target_rate", "Target arrival rate (ops/s)", registry=self.registry)
        self.latency = Gauge("edabench_response_time_seconds", "Response time of the last second",
                             ["kind", "quantile"], registry=self.registry)
        self.lag = Gauge("edabench_schedule_lag_seconds", "Schedule lag p99 of the last second",
                         registry=self.registry)
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, line: dict[str, Any]) -> None:
        for outcome in ("ok", "error", "timeout", "not_sent"):
            self.ops.labels(outcome).inc(line.get(outcome, 0))
        self.in_flight.set(line["in_flight"])
        self.target.set(line["target_rate"])
        for kind, block in line["ops"].items():
            self.latency.labels(kind, "0.5").set(block["p50_us"] / 1e6)
            self.latency.labels(kind, "0.99").set(block["p99_us"] / 1e6)
            self.latency.labels(kind, "1").set(block["max_us"] / 1e6)
        if line.get("lag_p99_us") is not None:
            self.lag.set(line["lag_p99_us"] / 1e6)
