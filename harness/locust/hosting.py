"""A Locust worker's side: host the generator, relay its reports, feed Locust's statistics.

On the master's plan, the worker starts `harness.locust.host` (a clean interpreter running a
`WorkerPool` of one) and tells the master when its driver is ready; on "go" it converts the
master's wall-clock start into this machine's monotonic clock and starts the schedule. Every
report goes to the master unchanged (`to_wire`), except that the final one's schedule end is
sent relative to the start: monotonic clocks are not comparable across machines.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event

from harness.locust.feed import LocustFeed
from harness.locust.host import HEADER, frame
from harness.locust.wire import MSG_FAILED, MSG_READY, MSG_REPORT, HostPlan
from harness.results.messages import FinalReport, IntervalReport, to_wire

log = logging.getLogger(__name__)
EXIT_WAIT_S = 15.0


class HostedGenerator:
    """One test's generator on this worker: the host process and the socket to it."""

    def __init__(self, plan: HostPlan, on_message: Callable[[tuple[Any, ...]], None]) -> None:
        self.plan = plan
        self.on_message = on_message
        self.done = Event()
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.locust.host", str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        theirs.close()
        self.sock = ours
        self.send(plan.to_msg())
        self.reader = gevent.spawn(self._read)

    def send(self, message: Any) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(frame(message))

    def _recv(self, n: int) -> bytes | None:
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(left)
            if not chunk:
                return None
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _read(self) -> None:
        try:
            while (head := self._recv(HEADER.size)) is not None:
                body = self._recv(HEADER.unpack(head)[0])
                if body is None:
                    break
                message = pickle.loads(body)
                try:
                    self.on_message(message)
                except Exception:
                    log.exception("edabench: handling %s from the generator failed", message[0])
                if message[0] == "done":
                    break
        except OSError:
            pass
        finally:
            self.done.set()
            self.close()

    def go(self, start_mono_ns: int) -> None:
        self.send(("go", start_mono_ns))

    def stop(self) -> None:
        self.send(("stop",))

    def close(self) -> None:
        """Reap the host once its socket closed (it exits after its generator sent its books, or
        after a failed start); one that lingers is killed."""
        with contextlib.suppress(OSError):
            self.sock.close()
        try:
            self.proc.wait(timeout=EXIT_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


class Hosting:
    """The worker role: at most one hosted generator at a time, for the master's current test."""

    def __init__(self, environment: Any, send: Callable[[str, dict[str, Any]], None],
                 flush_stats: Callable[[], None] | None) -> None:
        self.environment = environment
        self.send = send
        self.flush_stats = flush_stats
        self.host: HostedGenerator | None = None
        self.feed: LocustFeed | None = None
        self.start_mono_ns = 0

    def on_plan(self, data: dict[str, Any]) -> None:
        plan = HostPlan.from_msg(data)
        if self.host is not None and not self.host.done.is_set():
            self.send(MSG_FAILED, {"index": plan.index, "run_id": plan.run_id,
                                   "reason": "this worker still hosts the previous test's generator (draining)"})
            return
        self.feed = None
        self.start_mono_ns = 0
        self.host = HostedGenerator(plan, self._on_message)

    def _current(self, data: dict[str, Any]) -> HostedGenerator | None:
        host = self.host
        return host if host is not None and data.get("run_id") == host.plan.run_id else None

    def on_go(self, data: dict[str, Any]) -> None:
        host = self._current(data)
        if host is None:
            return
        start_wall_ns = int(data["start_wall_ns"])
        self.start_mono_ns = time.monotonic_ns() + (start_wall_ns - time.time_ns())
        spec = host.plan.spec
        self.feed = LocustFeed(self.environment.stats, str(spec.get("target", "")),
                               [o["name"] for o in spec.get("ops") or [{"name": "op"}]],
                               float(spec.get("warmup_s") or 0.0), start_wall_ns / 1e9)
        host.go(self.start_mono_ns)

    def on_stop(self, data: dict[str, Any]) -> None:
        if self._current(data) is not None:
            self.stop()

    def stop(self) -> None:
        if self.host is not None and not self.host.done.is_set():
            self.host.stop()

    def wait(self, wait_s: float) -> None:
        """Until the hosted generator has drained and sent its books (bounded), e.g. before a quit."""
        if self.host is not None:
            self.host.done.wait(wait_s)

    def _on_message(self, message: tuple[Any, ...]) -> None:
        host = self.host
        assert host is not None
        mine = {"index": host.plan.index, "run_id": host.plan.run_id}
        kind = message[0]
        if kind == "ready":
            self.send(MSG_READY, mine)
        elif kind == "failed":
            self.send(MSG_FAILED, {**mine, "reason": str(message[1])})
        elif kind == "report":
            self._relay(message[1], mine)

    def _relay(self, report: IntervalReport | FinalReport, mine: dict[str, Any]) -> None:
        extra: dict[str, Any] = dict(mine)
        if isinstance(report, IntervalReport):
            if self.feed is not None:
                self.feed.interval(report)
        else:
            if self.feed is not None:
                self.feed.final(report)
            if self.flush_stats is not None:
                # Locust ships its statistics every 3 s; send the rest now, ahead of the books on the
                # same connection, so the master's copy is complete when it writes the results
                self.flush_stats()
            if report.schedule_end_ns and self.start_mono_ns:
                extra["schedule_end_since_start_ns"] = report.schedule_end_ns - self.start_mono_ns
        self.send(MSG_REPORT, {"report": to_wire(report), **extra})
