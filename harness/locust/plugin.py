"""Hooks edabench into a Locust process: recording, the worker-to-master channel, the run's end.

Import it from a locustfile (``from harness.locust.plugin import install; install()``;
`harness.locust.users` does it for you). Roles:

* a process that runs users (a worker, or a stand-alone Locust) records every request
  event into a `ProcessRecorder` and ships one report per second, then its books;
* the master (or the stand-alone process) merges those reports into a run directory;
* the master ends a timed run itself: at the end of the schedule it asks every worker to
  drain and send its books, waits for all of them, writes the results, then quits (or
  stops, keeping the web UI up). Locust's own `--run-time` quit does not wait for workers'
  last messages, which would lose the end of the books.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.runners import MasterRunner, WorkerRunner

from harness.locust import webui
from harness.locust.recording import ProcessRecorder, error_kind
from harness.locust.runtime import (
    ENV_DURATION,
    ENV_END,
    ENV_USERS,
    MSG_FINISH,
    MSG_REPORT,
    MSG_USERS,
    OP_CONTEXT_KEY,
    STATE,
    env_float,
)
from harness.locust.sink import ResultSink
from harness.locust.workload import spec_from_env_or_file
from harness.spec import Spec

log = logging.getLogger(__name__)
END_SLACK_S = 0.5  # the master asks for books this long after the schedule's end (workers start later)
BOOKS_GRACE_S = 15.0  # beyond the drain timeout, how long the master waits for workers' books

_installed = False
_tests = 0


def install() -> None:
    """Register the listeners once per process (idempotent: every locustfile may call it)."""
    global _installed
    if _installed:
        return
    _installed = True
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
    events.request.add_listener(_on_request)
    events.quitting.add_listener(_on_quitting)


def _role(runner: Any) -> str:
    if isinstance(runner, MasterRunner):
        return "master"
    if isinstance(runner, WorkerRunner):
        return "worker"
    return "local"


def _duration_s() -> float | None:
    """The measured duration: from the edabench command, else none (the test runs until stopped)."""
    if ENV_DURATION in os.environ:
        return env_float(ENV_DURATION)
    return None


def _on_init(environment: Any, runner: Any = None, web_ui: Any = None, **_: Any) -> None:
    opts = environment.parsed_options
    locustfile = getattr(opts, "locustfile", None) if opts is not None else None
    spec = spec_from_env_or_file(locustfile)
    if spec is None:
        name = Path(str(locustfile or "locust")).stem or "locust"
        spec = Spec(name=name, target="external")
    STATE.spec = spec
    role = _role(runner)
    if role == "master":
        runner.register_message(MSG_REPORT, _on_report)
    elif role == "worker":
        runner.register_message(MSG_FINISH, _on_finish, concurrent=True)
        runner.register_message(MSG_USERS, _on_users)
    if web_ui is not None:
        webui.install(environment)


# -- test start ---------------------------------------------------------------------------------------
def _on_test_start(environment: Any, **_: Any) -> None:
    global _tests
    runner = environment.runner
    role = _role(runner)
    spec = STATE.spec
    assert spec is not None
    duration = _duration_s()
    opts = environment.parsed_options
    # open-model users share the rate by the test's user count: the UI may start another than -u
    started_with = getattr(runner, "target_user_count", None) if role != "worker" else STATE.users_from_master
    users = started_with or os.environ.get(ENV_USERS) or getattr(opts, "num_users", None) or 1
    STATE.users_total = max(1, int(users))
    if role == "master":
        runner.send_message(MSG_USERS, {"users": STATE.users_total})  # ahead of the spawn messages
    STATE.start_ns = time.monotonic_ns()
    STATE.end_ns = STATE.start_ns + int((spec.warmup_s + duration) * 1e9) if duration is not None else None
    STATE.stopping = False
    if role in ("master", "local"):
        processes = runner.worker_count if role == "master" else 1
        STATE.sink = ResultSink.create(spec, processes, duration, first=_tests == 0)
        _tests += 1
        log.info("edabench: recording to %s", STATE.sink.run_dir)
    if role in ("worker", "local"):
        index = int(getattr(runner, "worker_index", 0) or 0) if role == "worker" else 0
        emit = _send_to_master(runner) if role == "worker" else _to_sink
        rec = ProcessRecorder(index, spec.warmup_s, spec.timeout_s, emit)
        rec.start(STATE.start_ns)
        STATE.recorder = rec
        gevent.spawn(_ticker, rec)
    if role in ("master", "local") and duration is not None:
        gevent.spawn(_end_of_schedule, environment, STATE.sink)


def _on_users(environment: Any, msg: Any, **_: Any) -> None:
    STATE.users_from_master = int((msg.data or {}).get("users") or 0) or None


def _send_to_master(runner: Any) -> Any:
    def emit(report: dict[str, Any]) -> None:
        runner.send_message(MSG_REPORT, report)

    return emit


def _to_sink(report: dict[str, Any]) -> None:
    if STATE.sink is not None:
        STATE.sink.accept(report)


def _ticker(rec: ProcessRecorder) -> None:
    """Once a second: expire late ops, fold and ship the interval (the Collector's 1 s grid)."""
    tick = 0
    while not rec.finished and STATE.recorder is rec:
        tick += 1
        gevent.sleep(max(0.0, (rec.start_ns + tick * 1_000_000_000 - time.monotonic_ns()) / 1e9))
        if rec.finished or STATE.recorder is not rec:
            return
        rec.sweep()
        try:
            rec.emit_interval()
        except Exception:
            log.exception("edabench: interval report failed")


# -- recording ---------------------------------------------------------------------------------------
def _on_request(request_type: str, name: str, response_time: float, response_length: int,
                exception: BaseException | None = None, context: dict[str, Any] | None = None,
                response: Any = None, **_: Any) -> None:
    rec = STATE.recorder
    if rec is None or rec.finished or not rec.started:
        return
    op = context.get(OP_CONTEXT_KEY) if context else None
    rec.on_request(name, response_time or 0.0, error_kind(exception, response), op)


def _on_report(environment: Any, msg: Any, **_: Any) -> None:
    if STATE.sink is not None:
        STATE.sink.accept(msg.data)


# -- the end ------------------------------------------------------------------------------------------
def _drain(rec: ProcessRecorder) -> None:
    """Let in-flight arrivals answer (up to the spec's drain timeout) before closing the books."""
    spec = STATE.spec
    deadline = time.monotonic() + (spec.drain_timeout_s if spec is not None else 10.0)
    while rec.in_flight and time.monotonic() < deadline:
        rec.sweep()
        gevent.sleep(0.02)


def _close_recorder(runner: Any, interrupted: bool) -> None:
    rec = STATE.recorder
    if rec is None or rec.finished:
        return
    STATE.stopping = True
    _drain(rec)
    if rec.finished:
        return
    flush = getattr(runner, "_send_stats", None)
    if _role(runner) == "worker" and callable(flush):
        # Locust ships its own stats every 3 s; send the rest now, ahead of our books on the same
        # socket, so the master's copy of Locust's numbers is complete when it writes the results
        flush()
    rec.finish(interrupted=interrupted)


def _early() -> bool:
    return STATE.end_ns is not None and time.monotonic_ns() < STATE.end_ns


def _on_finish(environment: Any, msg: Any, **_: Any) -> None:
    """Worker: the master asks for the books; finish the schedule (unless interrupted), drain, send them."""
    interrupted = bool((msg.data or {}).get("interrupt"))
    if STATE.end_ns is not None and not interrupted:
        gevent.sleep(max(0.0, (STATE.end_ns - time.monotonic_ns()) / 1e9))
    _close_recorder(environment.runner, interrupted=interrupted or _early())


def _end_of_schedule(environment: Any, sink: ResultSink) -> None:
    """Master / stand-alone: end a timed run with complete books, then quit or stop."""
    assert STATE.end_ns is not None
    gevent.sleep(max(0.0, (STATE.end_ns - time.monotonic_ns()) / 1e9 + END_SLACK_S))
    if STATE.sink is not sink or sink.finalized:
        return
    runner = environment.runner
    if _role(runner) == "local":
        _close_recorder(runner, interrupted=False)
    else:
        STATE.stopping = True
        runner.send_message(MSG_FINISH, {})
        _wait_for_books(sink, (STATE.spec.drain_timeout_s if STATE.spec else 10.0) + BOOKS_GRACE_S)
    try:
        sink.finalize(environment)
    finally:
        if os.environ.get(ENV_END, "quit" if getattr(environment.parsed_options, "headless", False) else "stop") \
                == "quit":
            runner.quit()
        else:
            runner.stop()


def _wait_for_books(sink: ResultSink, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not sink.all_final() and time.monotonic() < deadline:
        gevent.sleep(0.05)
    if not sink.all_final():
        log.error("edabench: %d of %d workers sent their books", len(sink.finals), sink.processes)


def _on_test_stop(environment: Any, **_: Any) -> None:
    """A stop from the web UI (or Locust's own end): close the books of this process / the run."""
    role = _role(environment.runner)
    interrupted = _early()
    if role in ("worker", "local"):
        _close_recorder(environment.runner, interrupted)
    sink = STATE.sink
    if role in ("master", "local") and sink is not None and not sink.finalized:
        _collect_books(environment.runner, sink, interrupted)
        sink.finalize(environment, interrupted=interrupted)


def _on_quitting(environment: Any, **_: Any) -> None:
    """SIGTERM or Ctrl-C: collect the books that can be had, write the results (interrupted if early)."""
    runner = environment.runner
    role = _role(runner)
    interrupted = _early()
    if role in ("worker", "local"):
        _close_recorder(runner, interrupted=interrupted)
    sink = STATE.sink
    if role in ("master", "local") and sink is not None and not sink.finalized:
        _collect_books(runner, sink, interrupted)
        sink.finalize(environment, interrupted=interrupted)


def _collect_books(runner: Any, sink: ResultSink, interrupted: bool) -> None:
    """Master: ask the workers that have not sent their books for them, and wait (a stop from the
    UI has them already; a quit, from SIGTERM or Ctrl-C, stops the master without telling them)."""
    if _role(runner) != "master" or sink.all_final():
        return
    STATE.stopping = True
    runner.send_message(MSG_FINISH, {"interrupt": interrupted})
    _wait_for_books(sink, (STATE.spec.drain_timeout_s if STATE.spec else 10.0) + 5.0)
