"""Open-model Locust users: arrivals on a schedule, never waiting for earlier answers.

An ordinary Locust user is a closed loop: it sends, waits for the answer, waits some
more, sends again. When the system stalls, it stops sending, so the stall shows up in
a handful of samples instead of in every request that should have arrived meanwhile
(coordinated omission). An `OpenModelUser` instead decides the intended time of each
arrival from its rate alone (wrk2's discipline), runs each arrival's task in its own
greenlet, and the recorder measures the arrival's first request from that intended time.

Each scheduled arrival runs one task (picked by the usual @task weights). Keep it to one
request: later requests of the same task are not scheduled, so they are measured from
their actual send, like any closed-loop request.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any, ClassVar

import gevent
from gevent.pool import Group
from locust import User
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopTest, StopUser
from locust.user.task import LOCUST_STATE_RUNNING

from harness.locust.plugin import install
from harness.locust.recording import OpenOp
from harness.locust.runtime import OP_CONTEXT_KEY, STATE
from harness.schedule import rate_at

log = logging.getLogger(__name__)
IDLE_S = 0.05  # re-check interval while the rate is zero


class OpenModelUser(User):
    """Abstract: subclass, add @task methods; set `rate` or let the workload spec's rate be shared."""

    abstract = True
    #: arrivals per second of this one user; None: the spec's total rate divided by the user count
    rate: ClassVar[float | None] = None
    #: arrivals beyond this many unanswered ones are counted as not sent
    max_in_flight: ClassVar[int] = 10_000

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._ops: dict[Any, OpenOp] = {}
        self._in_flight = Group()

    def context(self) -> dict[str, Any]:
        """Tag requests issued from an arrival's greenlet with that arrival (read by the recorder)."""
        op = self._ops.get(gevent.getcurrent())
        return {OP_CONTEXT_KEY: op} if op is not None else {}

    def arrival_rate(self, t: float) -> float:
        """Arrivals per second of this user at `t` s since the test started; override to shape."""
        if self.rate is not None:
            return float(self.rate)
        spec = STATE.spec
        if spec is None:
            return 1.0
        total_s = spec.warmup_s + spec.duration_s
        return rate_at(spec.rate, t, total_s) / max(1, STATE.users_total)

    def run(self) -> None:  # type: ignore[override]  # the schedule replaces Locust's task loop
        self._state = LOCUST_STATE_RUNNING
        try:
            self.on_start()
            self._arrivals()
        except (gevent.GreenletExit, StopUser, StopTest):
            self.on_stop()

    def _arrivals(self) -> None:
        rec = STATE.recorder
        if rec is None or not self.tasks:
            gevent.sleep(1 << 30)
            return
        if any(isinstance(t, type) for t in self.tasks):
            raise TypeError(f"{type(self).__name__}: an open-model user's tasks are functions (one request "
                            "per arrival), not TaskSets")
        rate = self.arrival_rate(0.0)
        now = time.monotonic_ns()
        # a random phase, so that users started together do not send in lockstep
        next_ns = now + int(random.random() * 1e9 / rate) if rate > 0 else now
        while not STATE.stopping and rec is STATE.recorder:
            if STATE.end_ns is not None and next_ns >= STATE.end_ns:
                break
            wait_ns = next_ns - time.monotonic_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
            t = (next_ns - STATE.start_ns) / 1e9
            rate = self.arrival_rate(t)
            if rate <= 0:
                next_ns += int(IDLE_S * 1e9)
                continue
            task = random.choice(self.tasks)
            op = rec.arrive(getattr(task, "__name__", "task"), next_ns, self.max_in_flight)
            if op is not None:
                self._in_flight.spawn(self._run_op, task, op)
            next_ns += int(1e9 / rate)
        gevent.sleep(1 << 30)  # the schedule is over; stay until Locust stops the user

    def _run_op(self, task: Any, op: OpenOp) -> None:
        me = gevent.getcurrent()
        self._ops[me] = op
        rec = STATE.recorder
        rec.op_started(op)
        failure: BaseException | None = None
        try:
            task(self)
        except (StopUser, StopTest, gevent.GreenletExit) as exc:
            failure = exc
        except Exception as exc:  # an op failure is an outcome, as in the harness
            failure = exc
            log.debug("open-model task %s failed", op.task, exc_info=True)
        finally:
            self._ops.pop(me, None)
            rec.op_ended(op, failure)


class OpenModelHttpUser(OpenModelUser, FastHttpUser):
    """Open-model user with Locust's fast HTTP client, pooled wide enough for a stall's backlog."""

    abstract = True
    concurrency = 1000
    network_timeout = 30.0
    connection_timeout = 30.0


install()
