"""Locust anchor for the HTTP generator benchmark: FastHttpUser hitting GET /echo without waiting.

Besides Locust's own CSV, it writes its process's CPU time and request count at test start and
test stop (psutil) to the JSON file named by $BENCH_LOCUST_OUT, so that CPU per request leaves out
Locust's start-up (imports, gevent) the same way the other tools' numbers do.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import psutil
from locust import FastHttpUser, constant, events, task

_marks: dict[str, dict[str, float]] = {}


def _mark(name: str, environment: Any) -> None:
    t = psutil.Process().cpu_times()
    stats = environment.runner.stats.total if environment.runner is not None else None
    _marks[name] = {
        "wall": time.perf_counter(),
        "cpu_s": t.user + t.system,
        "requests": float(stats.num_requests if stats else 0),
        "failures": float(stats.num_failures if stats else 0),
    }


@events.test_start.add_listener
def _on_start(environment: Any, **_: Any) -> None:
    _mark("start", environment)


@events.test_stop.add_listener
def _on_stop(environment: Any, **_: Any) -> None:
    _mark("stop", environment)
    out = os.environ.get("BENCH_LOCUST_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            json.dump(_marks, fh)


class EchoUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def echo(self) -> None:
        self.client.get("/echo")
