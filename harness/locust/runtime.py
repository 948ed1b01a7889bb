"""What the edabench command tells its Locust processes, and their shared run state.

The command passes everything through environment variables (workers started by hand on
other machines get the same ones from the operator, or fall back to the locustfile's own
spec). `STATE` is the one per-process object the plugin, the users and the web page share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import orjson

from harness.spec import Spec

ENV_RUN_DIR = "EDABENCH_LOCUST_RUN_DIR"
ENV_RUNS_ROOT = "EDABENCH_LOCUST_RUNS_ROOT"
ENV_MANIFEST = "EDABENCH_LOCUST_MANIFEST"
ENV_OPTIONS = "EDABENCH_LOCUST_OPTIONS"
ENV_USERS = "EDABENCH_LOCUST_USERS"
ENV_DURATION = "EDABENCH_LOCUST_DURATION"
ENV_END = "EDABENCH_LOCUST_END"  # "quit" (headless) or "stop" (keep the web UI up)

MSG_REPORT = "edabench_report"
MSG_FINISH = "edabench_finish"
MSG_USERS = "edabench_users"
OP_CONTEXT_KEY = "edabench_op"


def target_options() -> dict[str, Any]:
    """The spec's target options merged with what the target's launch yielded (url, ports)."""
    raw = os.environ.get(ENV_OPTIONS)
    return dict(orjson.loads(raw)) if raw else {}


def env_float(name: str) -> float | None:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else None


@dataclass
class RunState:
    """Per-process state of the current Locust test (reset at every test start)."""

    spec: Spec | None = None
    recorder: Any = None  # ProcessRecorder, on processes that run users
    sink: Any = None  # ResultSink, on the master (or the only process)
    start_ns: int = 0
    end_ns: int | None = None  # open-model users schedule no arrival at or after it
    stopping: bool = False
    users_total: int = 1
    users_from_master: int | None = None  # the test's user count, as the master started it

    def observe(self, metric: str, value_us: int) -> None:
        """Record an extra latency (e.g. produce-to-persisted) when a test is being recorded."""
        rec = self.recorder
        if rec is not None and rec.started and not rec.finished:
            rec.observe(metric, value_us)


STATE = RunState()
