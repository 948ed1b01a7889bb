"""`edabench run --metrics-port` as promtool, a real Prometheus and the Grafana dashboard see it.

One real run of the echo target over HTTP (20 ms, a 1 s stall every 5 s: p50 ~21 ms, p99 ~970 ms) is
scraped by this test during the run and by a Prometheus server the test starts (temporary config and
data directory, free ports, 1 s scrape interval). promtool and Prometheus come from Debian's
`prometheus` package, which CI installs (`nox -s tests` installs it when missing): without them these
tests fail, they are not skipped.

First, the exposition fed by hand: which classic bucket an HDR value lands in, series at zero from
a kind's first second, the ops counter's kinds. Then, of the real run: promtool's lint is clean; the
families, types and labels are the documented ones and those of the saved scrape the Grafana unit
test reads (tests/unit/edabench_metrics.prom; `EDABENCH_UPDATE_FIXTURES=1` rewrites it from this
run); the ops counter is the run's per-second books summed; Prometheus's
`histogram_quantile(0.99, ...)` over the run is within one bucket of the run's own p99
(summary.json); every harness query of the dashboard answers on Prometheus. Every
process started here is stopped by its id, also when a test fails.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.books import OUTCOMES
from harness.live import BUCKETS_S, PromMetrics
from harness.results.hdr import new_histogram

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "unit" / "edabench_metrics.prom"
DASHBOARD = REPO / "infra" / "grafana" / "edabench.json"
RUN_DEADLINE_S = 240.0  # the run is ~22 s of schedule; a loaded machine takes longer to start it
KIND = "echo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tool(name: str) -> str:
    path = shutil.which(name) or f"/usr/bin/{name}"
    if not os.access(path, os.X_OK):
        pytest.fail(f"{name} not found: install Debian's prometheus package (CI and `nox -s tests` do)")
    return path


def edabench() -> list[str]:
    script = Path(sys.executable).with_name("edabench")
    return [str(script)] if script.exists() else [sys.executable, "-m", "harness.cli"]


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, wait_s: float = 30.0) -> None:
    """Stop a process this module started in a session of its own, and its children (its group)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def http_get(url: str, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return str(resp.read().decode())


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample(text: str, name: str, **labels: str) -> float:
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise KeyError(f"{name}{labels}")


def shape(text: str) -> dict[str, tuple[str, frozenset[str]]]:
    """Every sample name of a scrape with its family's type and its label names."""
    out: dict[str, tuple[str, set[str]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, (fam.type, set()))[1].update(s.labels)
    return {name: (typ, frozenset(labels)) for name, (typ, labels) in out.items()}


@dataclass
class Scrape:
    at: float  # wall-clock seconds
    text: str

    @property
    def measured(self) -> bool:
        """The run is in its measured window: latencies are in and the schedule is on."""
        try:
            return (sample(self.text, "edabench_response_time_seconds_count", kind=KIND) > 0
                    and sample(self.text, "edabench_target_rate") > 0)
        except KeyError:
            return False


@dataclass
class Prometheus:
    url: str
    proc: subprocess.Popen[Any]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        body = orjson.loads(http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout=10))
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def value(self, expr: str, at: float | None = None) -> float:
        result = self.query(expr, at)
        assert len(result) == 1, (expr, result)
        return float(result[0]["value"][1])


@dataclass
class ObservedRun:
    prometheus: Prometheus
    run_dir: Path
    summary: dict[str, Any]
    returncode: int
    output: str
    scrapes: list[Scrape] = field(default_factory=list)

    @property
    def measured_scrapes(self) -> list[Scrape]:
        return [s for s in self.scrapes if s.measured]


# -- the exposition, fed by hand (no process) ------------------------------------------------------


def exposition(metrics: PromMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def line(t: int, **counts: Any) -> dict[str, Any]:
    return {"t": t, "warmup": False, "target_rate": 100.0, "in_flight": 3, "ops": {}, **counts}


def test_a_value_on_a_bound_counts_in_its_bucket_and_one_above_it_in_the_next() -> None:
    metrics = PromMetrics(0, serve=False)
    hist = new_histogram()
    for us in (1000, 1001, 50_000_000):  # 1 ms exactly, just above, beyond the last bound (30 s)
        hist.record_value(us)
    metrics.observe("echo.response", hist)
    text = exposition(metrics)
    bucket = {le: sample(text, "edabench_response_time_seconds_bucket", kind=KIND, le=le)
              for le in ("0.001", "0.0018", "30.0", "+Inf")}
    assert bucket == {"0.001": 1, "0.0018": 2, "30.0": 2, "+Inf": 3}
    assert sample(text, "edabench_response_time_seconds_count", kind=KIND) == 3
    assert sample(text, "edabench_response_time_seconds_sum", kind=KIND) == pytest.approx(50.002, rel=1e-3)


def test_a_kind_gets_every_series_at_zero_when_first_seen() -> None:
    metrics = PromMetrics(0, serve=False)
    metrics.update(line(0, ok=5, kind_counts={KIND: {"ok": 5}}))
    text = exposition(metrics)
    assert [sample(text, "edabench_ops_total", kind=KIND, outcome=o) for o in OUTCOMES] == [5, 0, 0, 0]
    for name in ("edabench_response_time_seconds", "edabench_service_time_seconds"):
        assert sample(text, f"{name}_bucket", kind=KIND, le="+Inf") == sample(text, f"{name}_count", kind=KIND) == 0
    assert sample(text, "edabench_schedule_lag_seconds_count") == 0
    assert (sample(text, "edabench_in_flight"), sample(text, "edabench_target_rate")) == (3, 100)


def test_counts_without_kinds_go_to_all_kinds() -> None:
    metrics = PromMetrics(0, serve=False)
    metrics.update(line(0, ok=4, error=1))  # a report from a generator without per-kind counts
    text = exposition(metrics)
    assert sample(text, "edabench_ops_total", kind="(all kinds)", outcome="ok") == 4
    assert sample(text, "edabench_ops_total", kind="(all kinds)", outcome="error") == 1
    assert "edabench_response_time_seconds_count" not in text


def test_observed_metrics_are_labelled_by_metric() -> None:
    metrics = PromMetrics(0, serve=False)
    hist = new_histogram()
    hist.record_value(2500)
    metrics.observe("read_your_writes_lag", hist)
    assert sample(exposition(metrics), "edabench_observed_seconds_bucket", metric="read_your_writes_lag",
                  le="0.0032") == 1


# -- a real run, promtool, Prometheus ---------------------------------------------------------------


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[Prometheus]:
    binary = tool("prometheus")
    base = tmp_path_factory.mktemp("prometheus")
    config = base / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: edabench\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{metrics_port}']\n")
    port = free_port()
    log = (base / "prometheus.log").open("wb")
    proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={base / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server = Prometheus(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (base / "prometheus.log").read_text()
            with contextlib.suppress(OSError):
                if "Ready" in http_get(f"{server.url}/-/ready", timeout=2):
                    break
            assert time.monotonic() < deadline, "Prometheus not ready after 60 s"
            time.sleep(0.2)
        yield server
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def observed_run(tmp_path_factory: pytest.TempPathFactory, prometheus: Prometheus, metrics_port: int) -> ObservedRun:
    """echo-http as shipped (200 ops/s, 2 s warm-up, 20 s measured), its /metrics scraped every second."""
    base = tmp_path_factory.mktemp("run")
    out_path = base / "output.txt"
    with out_path.open("wb") as out:
        proc = subprocess.Popen([*edabench(), "run", str(REPO / "workloads" / "echo-http.toml"),
                                 "--metrics-port", str(metrics_port), "--runs-dir", str(base / "runs"),
                                 "--no-report", "--no-gate"],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    scrapes: list[Scrape] = []
    try:
        deadline = time.monotonic() + RUN_DEADLINE_S
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"the run did not end in {RUN_DEADLINE_S} s"
            with contextlib.suppress(OSError):
                scrapes.append(Scrape(time.time(), http_get(f"http://127.0.0.1:{metrics_port}/metrics")))
            time.sleep(1.0)
    finally:
        stop(proc, signal.SIGINT)
    output = out_path.read_text(errors="replace")
    summaries = list((base / "runs").glob("*/summary.json"))
    assert len(summaries) == 1, output
    return ObservedRun(prometheus, summaries[0].parent, orjson.loads(summaries[0].read_bytes()),
                       proc.returncode, output, scrapes)


def test_the_run_ends_with_a_trusted_verdict_or_says_why(observed_run: ObservedRun) -> None:
    # --no-gate: 0, or 4 when a loaded machine made the generator fall behind (the numbers still stand)
    assert observed_run.returncode in (0, 4), observed_run.output
    assert observed_run.measured_scrapes, "no scrape during the measured window"


def test_promtool_check_metrics_passes_on_a_live_scrape(observed_run: ObservedRun) -> None:
    text = observed_run.measured_scrapes[-1].text
    done = subprocess.run([tool("promtool"), "check", "metrics"], input=text.encode(), capture_output=True,
                          timeout=60)
    assert (done.returncode, done.stdout.decode() + done.stderr.decode()) == (0, ""), text


def test_the_scrape_has_the_documented_families_and_labels(observed_run: ObservedRun) -> None:
    families = parse(observed_run.measured_scrapes[-1].text)
    assert {name: fam.type for name, fam in families.items()} == {
        "edabench_ops": "counter",
        "edabench_in_flight": "gauge",
        "edabench_target_rate": "gauge",
        "edabench_response_time_seconds": "histogram",
        "edabench_service_time_seconds": "histogram",
        "edabench_schedule_lag_seconds": "histogram",
    }  # echo observes no extra latency: no edabench_observed_seconds
    ops = {(s.labels["kind"], s.labels["outcome"]) for s in families["edabench_ops"].samples
           if s.name == "edabench_ops_total"}
    assert ops == {(KIND, outcome) for outcome in OUTCOMES}
    for name, label in (("edabench_response_time_seconds", {"kind": KIND}),
                        ("edabench_service_time_seconds", {"kind": KIND}), ("edabench_schedule_lag_seconds", {})):
        buckets = [s for s in families[name].samples if s.name.endswith("_bucket")]
        assert {frozenset(s.labels.items()) - {("le", s.labels["le"])} for s in buckets} == {
            frozenset(label.items())}
        assert [float(s.labels["le"]) for s in buckets] == [*BUCKETS_S, math.inf]
        counts = [s.value for s in buckets]
        assert counts == sorted(counts), f"{name}: cumulative buckets"
        count = next(s.value for s in families[name].samples if s.name.endswith("_count"))
        assert counts[-1] == count


def test_the_saved_scrape_fixture_has_the_shape_of_a_live_one(observed_run: ObservedRun) -> None:
    live = observed_run.measured_scrapes[-1].text
    if os.environ.get("EDABENCH_UPDATE_FIXTURES") == "1":
        FIXTURE.write_text(live)
    assert shape(FIXTURE.read_text()) == shape(live), (
        f"{FIXTURE.relative_to(REPO)} is not what `edabench run --metrics-port` serves any more: rerun this test "
        "with EDABENCH_UPDATE_FIXTURES=1 to save a new scrape, and check the Grafana dashboard against it")


def test_the_ops_counter_is_the_runs_books_by_kind_and_outcome(observed_run: ObservedRun) -> None:
    lines = [orjson.loads(x) for x in (observed_run.run_dir / "timeseries.jsonl").read_bytes().splitlines()]
    running = {outcome: 0 for outcome in OUTCOMES}
    prefixes = [dict(running)]
    for line in lines:
        for outcome, n in (line["kind_counts"].get(KIND) or {}).items():
            running[outcome] += n
        prefixes.append(dict(running))
    books = observed_run.summary["ops"][KIND]["counts"]  # all time, warm-up included
    assert running == {outcome: books[outcome] for outcome in OUTCOMES}
    for scrape in observed_run.scrapes:  # every scrape is the books' counts after some whole second
        if "edabench_ops_total{" not in scrape.text:  # before the first second: no kind seen yet
            continue
        seen = {o: int(sample(scrape.text, "edabench_ops_total", kind=KIND, outcome=o)) for o in OUTCOMES}
        assert seen in prefixes, seen


def bucket_of(seconds: float) -> int:
    """Index of the classic bucket (BUCKETS_S[i-1], BUCKETS_S[i]] that holds a value; len() for +Inf."""
    return bisect.bisect_left(BUCKETS_S, seconds)


def test_prometheus_p99_over_the_run_is_within_one_bucket_of_the_runs_own(observed_run: ObservedRun) -> None:
    prom = observed_run.prometheus
    whole_run = "sum by (le) (increase(edabench_response_time_seconds_bucket[10m]))"
    figures = {}
    for q, key in ((0.5, "p50"), (0.99, "p99")):
        estimate = prom.value(f"histogram_quantile({q}, {whole_run})")
        exact = observed_run.summary["overall"]["response_time_us"][key] / 1e6
        figures[key] = (estimate, exact)
        print(f"{key}: Prometheus {estimate * 1000:.1f} ms (bucket {bucket_of(estimate)}), "
              f"summary.json {exact * 1000:.1f} ms (bucket {bucket_of(exact)})")
    estimate, exact = figures["p99"]
    assert abs(bucket_of(estimate) - bucket_of(exact)) <= 1, figures


def dashboard_queries() -> list[tuple[str, str]]:
    board = orjson.loads(DASHBOARD.read_bytes())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])
            if "edabench_" in t["expr"]]


def test_every_harness_query_of_the_dashboard_answers_on_prometheus(observed_run: ObservedRun) -> None:
    at = observed_run.measured_scrapes[-1].at  # in the measured window, as a live dashboard would ask
    queries = dashboard_queries()
    assert len(queries) >= 10
    for title, expr in queries:
        result = observed_run.prometheus.query(expr.replace("$__rate_interval", "15s"), at)
        assert result, f"{title}: {expr} gives nothing"
        values = [float(r["value"][1]) for r in result]
        assert all(math.isfinite(v) and v >= 0 for v in values), (title, expr, result)
