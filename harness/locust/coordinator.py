"""The master's side: each Locust test is one edabench run, merged by the harness's Collector.

When Locust has spawned a test's users, every worker running a `ScheduledOps` user is given its
share of the schedule (worker i of N takes arrivals i, i+N, ..., as generator processes do).
Once all have started their driver, the master picks a wall-clock start a moment ahead and
says "go". Their interval reports are merged exactly (HDR counts add) into the run directory by
the same `Collector` as `edabench run`; when every final report is in (the schedule ran and
drained, or a stop came), summary.json, run.json and gate.xml are written by the results layer,
and report.html and summary.md by the `edabench.after_run` entry points.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from hdrh.histogram import HdrHistogram

from harness.engine.runner import measured_s, slo_of
from harness.locust.wire import MANIFEST, MSG_GO, MSG_PLAN, MSG_STOP, HostPlan, Session
from harness.profiles import build
from harness.results.collector import Collector
from harness.results.gate import evaluate_slos, verdict_json
from harness.results.hdr import add, new_histogram, reset, stats, values_at
from harness.results.junit import write_checks
from harness.results.messages import FinalReport, from_wire
from harness.results.rundir import RunRecord, make_run_dir, write_json
from harness.results.summary import build_summary
from harness.spec import Spec

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 180.0  # driver start (a bank service's consumer group can take a while)
START_SLACK_S = 0.5  # between "go" and the first intended send: the message reaches every worker
BOOKS_GRACE_S = 15.0  # beyond the drain timeout, how long a stopped test waits for books
SERIES_MAX = 3600  # points kept for the live chart
AFTER_RUN_TIMEOUT_S = 300.0

Send = Callable[[str, dict[str, Any], str | None], None]


def locust_view(stats_: Any) -> dict[str, Any]:
    """Locust's own numbers for the test (ms, Locust's rounding): fed from the same histograms."""
    out: dict[str, Any] = {}
    for entry in [*stats_.entries.values(), stats_.total]:
        row: dict[str, Any] = {"count": entry.num_requests, "failures": entry.num_failures}
        if entry.num_requests - entry.num_none_requests > 0:
            for key, q in (("p50", 0.5), ("p90", 0.9), ("p95", 0.95), ("p99", 0.99), ("p99_9", 0.999)):
                row[f"{key}_ms"] = entry.get_response_time_percentile(q)
            row["max_ms"] = round(entry.max_response_time, 3)
        out[entry.name] = row
    return out


class TestRun:
    """One Locust test as one run directory."""

    def __init__(self, env: Any, session: Session, spec: Spec, run_dir: Path, hosts: list[str], send: Send,
                 on_interval: Callable[[dict[str, Any]], None] | None = None,
                 on_histogram: Callable[[str, HdrHistogram], None] | None = None) -> None:
        self.env = env
        self.session = session
        self.spec = spec
        self.run_dir = run_dir
        self.run_id = run_dir.name
        self.hosts = hosts
        self.send = send
        self.on_interval_hook = on_interval
        self.on_histogram_hook = on_histogram
        self.record = RunRecord(run_dir, spec, session.source, session.command, len(hosts), front_end="locust",
                                extra_config={"locust": {**session.locust, "workers_hosting": len(hosts)},
                                              "timed": session.timed})
        self.record.services(session.services, session.embedded)
        self.ready: set[int] = set()
        self.problems: list[str] = []
        self.finals: dict[int, FinalReport] = {}
        self.processes: dict[int, dict[str, Any]] = {
            i: {"worker": cid, "response_count": 0} for i, cid in enumerate(hosts)}
        self.collector: Collector | None = None
        self.start_mono_ns = 0
        self.stop_requested = False
        self.stopped_early = False
        self.finished = Event()
        self._finalizing = False
        self.series: list[dict[str, Any]] = []
        self._resp = new_histogram()
        self._svc = new_histogram()
        self.summary: dict[str, Any] | None = None
        self.verdict: dict[str, Any] | None = None
        self.made: list[Path] = []

    # -- start ------------------------------------------------------------------------------------
    def plan(self) -> None:
        s = self.session
        for i, client in enumerate(self.hosts):
            plan = HostPlan(i, len(self.hosts), self.run_id, str(self.run_dir), self.spec.model_dump(mode="json"),
                            s.source, dict(s.services), dict(s.launched))
            self.send(MSG_PLAN, plan.to_msg(), client)
        gevent.spawn(self._await_ready)

    def _await_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(self.ready) < len(self.hosts) and not self.problems and not self.stop_requested:
            if time.monotonic() > deadline:
                self.problems.append(f"{len(self.hosts) - len(self.ready)} generator(s) did not start within "
                                     f"{READY_TIMEOUT_S:.0f} s")
                break
            gevent.sleep(0.05)
        if self.problems or self.stop_requested:
            self._broadcast(MSG_STOP, {})
            self.finalize()
            return
        self._go()

    def _go(self) -> None:
        spec = self.spec
        total_s = spec.warmup_s + spec.duration_s
        start_wall_ns = time.time_ns() + int(START_SLACK_S * 1e9)
        self.start_mono_ns = time.monotonic_ns() + int(START_SLACK_S * 1e9)
        profile = build(spec.rate, total_s, spec.seed)
        self.collector = Collector(self.run_dir, len(self.hosts), start_wall_ns // 1_000_000, total_s, profile.rate_at,
                                   spec.warmup_s, self._on_interval, self._on_histogram)
        self._broadcast(MSG_GO, {"start_wall_ns": start_wall_ns})

    def _broadcast(self, msg_type: str, data: dict[str, Any]) -> None:
        for client in self.hosts:
            self.send(msg_type, {**data, "run_id": self.run_id}, client)

    # -- from the workers ---------------------------------------------------------------------------
    def on_ready(self, index: int) -> None:
        self.ready.add(index)

    def on_failed(self, index: int, reason: str) -> None:
        self.problems.append(f"generator {index} ({self.hosts[index] if index < len(self.hosts) else '?'}): "
                             f"{reason}")
        if self.collector is not None:  # already running: the others stop, the run reports the failure
            self.stop()

    def on_report(self, data: dict[str, Any]) -> None:
        if self.collector is None or self.finished.is_set():
            return
        report = from_wire(data["report"])
        if isinstance(report, FinalReport):
            since = data.get("schedule_end_since_start_ns")
            # back on this machine's monotonic clock, for the measured window
            report.schedule_end_ns = self.start_mono_ns + int(since) if since else 0
            self.finals[report.process] = report
            self.collector.accept(report)
            if len(self.finals) >= len(self.hosts):
                gevent.spawn(self.finalize)
            return
        row = self.processes.get(report.process)
        if row is not None:
            row["response_count"] += sum(k.response.total for k in report.kinds.values() if k.response is not None)
        self.collector.accept(report)

    # -- the live view ----------------------------------------------------------------------------------
    def _on_histogram(self, name: str, hist: HdrHistogram) -> None:
        if name.endswith(".response"):
            add(self._resp, hist)
        elif name.endswith(".service"):
            add(self._svc, hist)
        if self.on_histogram_hook is not None:
            self.on_histogram_hook(name, hist)

    def _on_interval(self, line: dict[str, Any]) -> None:
        point: dict[str, Any] = {"t": line["t"], "warmup": line["warmup"], "target_rate": line["target_rate"],
                                 "ok": line.get("ok", 0), "failed": line.get("error", 0) + line.get("timeout", 0)}
        if self._resp.get_total_count():
            p50, p90, p99, p999 = values_at(self._resp, (50.0, 90.0, 99.0, 99.9))
            point.update(p50=p50, p90=p90, p99=p99, p99_9=p999, max=int(self._resp.get_max_value()))
        if self._svc.get_total_count():
            point["service_p99"] = values_at(self._svc, (99.0,))[0]
        try:
            p95 = self.env.stats.total.get_current_response_time_percentile(0.95)
        except ValueError:
            p95 = None
        if p95:
            point["locust_p95"] = int(p95 * 1000)
        reset(self._resp)
        reset(self._svc)
        self.series.append(point)
        del self.series[:-SERIES_MAX]
        if self.on_interval_hook is not None:
            self.on_interval_hook(line)

    def rows(self) -> list[dict[str, Any]]:
        """Per op kind: the final numbers once written, else the merged intervals so far (µs)."""
        if self.summary is not None:
            return [{"name": kind, "counts": b["counts"], "response": b["response_time_us"],
                     "service": b["service_time_us"]} for kind, b in self.summary["ops"].items()]
        c = self.collector
        if c is None:
            return []
        return [{"name": kind, "response": stats(c.total(f"{kind}.response")),
                 "service": stats(c.total(f"{kind}.service"))} for kind in sorted(c.kinds_seen)]

    # -- the end ----------------------------------------------------------------------------------------
    def stop(self) -> None:
        """A stop from the UI, a quit, or a failed generator: end the schedule, collect the books."""
        if self.stop_requested or self.finished.is_set():
            return
        self.stop_requested = True
        if self.collector is not None:
            end = self.start_mono_ns + int((self.spec.warmup_s + self.spec.duration_s) * 1e9)
            self.stopped_early = time.monotonic_ns() < end
        self._broadcast(MSG_STOP, {})
        gevent.spawn(self._finish_after_stop)

    def _finish_after_stop(self) -> None:
        deadline = time.monotonic() + self.spec.drain_timeout_s + BOOKS_GRACE_S
        while len(self.finals) < len(self.hosts) and time.monotonic() < deadline and self.collector is not None:
            gevent.sleep(0.05)
        self.finalize()

    def finalize(self) -> None:
        """Write the run's results, once; then end the Locust test if it was timed."""
        if self._finalizing:
            return
        self._finalizing = True
        try:
            self._write_results()
        except Exception:
            log.exception("edabench: writing the results of %s failed", self.run_dir)
        finally:
            self.finished.set()
        if self.session.timed:
            runner = self.env.runner
            if self.session.end == "quit":
                gevent.spawn(runner.quit)
            elif runner.state in ("spawning", "running"):
                gevent.spawn(runner.stop)

    def _write_results(self) -> None:
        spec = self.spec
        if self.collector is None:  # nothing started: an empty run that says why
            self.collector = Collector(self.run_dir, len(self.hosts), int(time.time() * 1000),
                                       spec.warmup_s + spec.duration_s, lambda t: 0.0, spec.warmup_s)
        self.collector.close()
        finals = [self.finals[i] for i in sorted(self.finals)]
        # a test started from the UI without a run time ends with its Stop: that is its schedule's end
        interrupted = self.session.timed and (self.stopped_early or any(f.interrupted for f in finals))
        summary = build_summary(spec.name, self.collector, finals, len(self.hosts),
                                measured_s(spec, self.start_mono_ns, finals), slo_of(spec), interrupted,
                                spec.slo.max_schedule_lag_ms, spec.slo.check_generator, self.problems)
        summary["locust"] = locust_view(self.env.stats)
        write_json(self.run_dir / "summary.json", summary)
        for i, final in self.finals.items():
            self.processes[i]["books"] = final.books
        write_json(self.run_dir / "locust-processes.json", {str(i): p for i, p in sorted(self.processes.items())})
        self.record.end(interrupted)
        checks = evaluate_slos(summary)
        write_checks(self.run_dir / "gate.xml", spec.name, checks, summary.get("measured_s", 0.0))
        self.summary = summary
        self.verdict = verdict_json(checks)
        if self.session.report:
            self.made = after_run(self.run_dir)
        first = Path(self.session.first_run_dir) if self.session.first_run_dir else self.run_dir
        with (first / "logs" / MANIFEST).open("a", encoding="utf-8") as fh:
            fh.write(f"{self.run_dir}\n")


def after_run(run_dir: Path) -> list[Path]:
    """report.html and summary.md, by the `edabench.after_run` entry points, in a process of their
    own: a report takes a second or more of CPU, which would stall this process's heartbeats."""
    try:
        done = subprocess.run([sys.executable, "-m", "harness.locust.afterrun", str(run_dir)], capture_output=True,
                              text=True, timeout=AFTER_RUN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        log.error("edabench: the report of %s took longer than %.0f s", run_dir, AFTER_RUN_TIMEOUT_S)
        return []
    if done.returncode:
        log.error("edabench: the report of %s failed: %s", run_dir, done.stderr[-2000:])
    return [Path(line) for line in done.stdout.splitlines() if line.strip()]


class Coordinator:
    """The master role (or a stand-alone Locust's): the session's tests, one at a time."""

    def __init__(self, env: Any, session: Session, send: Send, hosts: Callable[[], list[str]]) -> None:
        self.env = env
        self.session = session
        self.send = send
        self.find_hosts = hosts
        self.current: TestRun | None = None
        self.runs: dict[str, Path] = {}
        self.tests = 0
        self.pending = False
        self.prom: Any = None
        if session.metrics_port:
            from harness.live import PromMetrics

            self.prom = PromMetrics(session.metrics_port)

    def on_test_start(self) -> None:
        self.pending = True

    def on_spawned(self) -> None:
        """Users are spawned: plan the test (once; a later change of the user count changes nothing)."""
        if not self.pending:
            return
        self.pending = False
        if self.current is not None and not self.current.finished.is_set():
            log.warning("edabench: the previous test is still writing its results; this one is not recorded")
            return
        hosts = self.find_hosts()
        if not hosts:
            log.warning("edabench: no worker runs a ScheduledOps user: nothing is scheduled in this test")
            return
        spec = self.session.spec_for_test()
        first = self.session.first_run_dir
        if self.tests == 0 and first and Path(first).is_dir() and not (Path(first) / "summary.json").exists():
            run_dir = Path(first)
        else:
            run_dir = make_run_dir(spec.name, self.session.runs_root)
        self.tests += 1
        prom = self.prom
        self.current = TestRun(self.env, self.session, spec, run_dir, hosts, self.send,
                               prom.update if prom is not None else None,
                               prom.observe if prom is not None else None)
        self.runs[run_dir.name] = run_dir
        log.info("edabench: recording to %s with %d generator(s)", run_dir, len(hosts))
        self.current.plan()

    def _run_of(self, data: dict[str, Any]) -> TestRun | None:
        run = self.current
        return run if run is not None and data.get("run_id") == run.run_id else None

    def on_ready(self, data: dict[str, Any]) -> None:
        if (run := self._run_of(data)) is not None:
            run.on_ready(int(data["index"]))

    def on_failed(self, data: dict[str, Any]) -> None:
        if (run := self._run_of(data)) is not None:
            run.on_failed(int(data["index"]), str(data["reason"]))

    def on_report(self, data: dict[str, Any]) -> None:
        if (run := self._run_of(data)) is not None:
            run.on_report(data)

    def on_test_stop(self) -> None:
        self.pending = False
        if self.current is not None:
            self.current.stop()

    def on_quitting(self, wait_s: float) -> None:
        """Before Locust quits its workers: stop the test and wait (bounded) for its results."""
        run = self.current
        if run is None:
            return
        run.stop()
        run.finished.wait(wait_s)
