"""What the edabench command, the Locust master and its workers tell each other.

The command hands its master a `Session` (JSON in an environment variable): the spec, the
service URLs and what the target's launch returned. The master hands each worker that hosts a
generator a `HostPlan` in a Locust custom message, so a worker started by hand on another
machine needs nothing but the locustfile and the master's address. Reports travel as
`harness.results.messages.to_wire` dicts (Locust's messages are msgpack).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from harness.spec import Spec, parse_spec

ENV_SESSION = "EDABENCH_LOCUST_SESSION"
MANIFEST = "locust-runs.txt"  # in the first run directory's logs/: one line per finished test

# master -> worker
MSG_PLAN = "edabench_plan"
MSG_GO = "edabench_go"
MSG_STOP = "edabench_stop"
# worker -> master
MSG_READY = "edabench_ready"
MSG_FAILED = "edabench_failed"
MSG_REPORT = "edabench_report"

#: the schedule of a test started from the web UI without a run time lasts until Stop
OPEN_ENDED_S = 7 * 24 * 3600.0


@dataclass
class Session:
    """One `edabench locust` session (the master's view); many tests may run in it (web UI)."""

    spec: dict[str, Any]
    source: str
    services: dict[str, str] = field(default_factory=dict)
    embedded: list[str] = field(default_factory=list)
    launched: dict[str, Any] = field(default_factory=dict)  # what the target's launch yielded, minus pids
    first_run_dir: str | None = None  # prepared by the command (services' and target's logs are there)
    runs_root: str = "runs"
    command: list[str] = field(default_factory=list)
    timed: bool = True  # False: web UI tests run until Stop
    end: str = "quit"  # after a timed test: "quit" (headless) or "stop" (keep the web UI)
    report: bool = True
    metrics_port: int | None = None
    locust: dict[str, Any] = field(default_factory=dict)  # workers, users, web: for run.json

    def to_env(self) -> str:
        return orjson.dumps(asdict(self), default=str).decode()

    @classmethod
    def from_env(cls) -> Session | None:
        raw = os.environ.get(ENV_SESSION)
        return cls(**orjson.loads(raw)) if raw else None

    def spec_for_test(self) -> Spec:
        """The spec one test runs: as given, or held open until Stop for an untimed web UI test."""
        spec = parse_spec(self.spec, self.source)
        if self.timed or not holds(spec):
            return spec
        return spec.with_overrides(duration_s=OPEN_ENDED_S)


def holds(spec: Spec) -> bool:
    """Whether the rate profile can go on past its duration (a ramp or a single burst cannot)."""
    rate = spec.rate
    return rate.profile in ("constant", "steps") or (rate.profile == "burst" and rate.burst_every_s is not None)


@dataclass
class HostPlan:
    """What one generator process is to run: its share `index` of `count` of the schedule."""

    index: int
    count: int
    run_id: str
    run_dir: str
    spec: dict[str, Any]
    source: str
    services: dict[str, str]
    launched: dict[str, Any]

    def to_msg(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_msg(cls, data: dict[str, Any]) -> HostPlan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})
