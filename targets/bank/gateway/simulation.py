"""The seed's Simulator as a thin HTTP face on the harness's own run machinery.

`POST /api/v1/simulation/start {"rate": 10, "duration": 60, ...}` runs the bank workload
(the shape of `workloads/bank-smoke.toml`: its op mix, bad-event shares and goals, with the
request's rate and duration) against the pipeline the gateway fronts: its Kafka, its PostgreSQL,
its namespace. The run is an ordinary edabench run (a run directory with summary.json, HDR
logs, the books), executed in a child process (`simrun`). One run at a time: a second start
is a 409. `stop` asks the run to stop the way Ctrl-C does (stop sending, drain, write the
results); `status` reports what the run has sent so far, from its per-second intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from targets.bank.db import ENV_DSN
from targets.bank.gateway.metrics import SIMULATION_ACTIVE, SIMULATIONS

log = logging.getLogger(__name__)

#: the default shape of a simulation: the bank CI smoke scenario
DEFAULT_SHAPE = Path(__file__).resolve().parents[3] / "workloads" / "bank-smoke.toml"
ACTIVE = ("starting", "running", "stopping")


class StartRequest(BaseModel):
    """The body of `POST /api/v1/simulation/start`. Unknown fields are refused (a misspelt
    `durration` must not silently run for the default time)."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(10.0, gt=0, description="events per second (all processes)")
    duration: float = Field(60.0, gt=0, description="seconds of load after the warm-up")
    warmup: float = Field(0.0, ge=0, description="seconds of load before the measured window")
    #: default: a fresh one per run. The bank workload draws its event ids from the seed, and the
    #: gateway's ledger is never reset: a second run with one seed would send the first run's event
    #: ids again, which the ledger takes as duplicates (no effect)
    seed: int | None = Field(None, ge=0, lt=2**31)
    processes: int = Field(1, ge=1, le=64)
    mix: dict[str, float] | None = Field(None, description="op kind -> weight (open, deposit, ...)")
    workload_options: dict[str, Any] | None = Field(None, description="merged over the shape's")
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,60}$")


class BadRequest(ValueError):
    """A start request that cannot run: `detail` is a list of {loc, msg[, input]}."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{d['loc']}: {d['msg']}" for d in detail))
        self.detail = detail


@dataclass
class SimConfig:
    kafka: str
    dsn: str
    namespace: str
    runs_root: Path
    group: str | None = None
    shape: Path = DEFAULT_SHAPE
    max_rate: float = 20_000.0
    max_duration_s: float = 24 * 3600.0
    stop_timeout_s: float = 60.0
    #: the run attaches to the pipeline the gateway fronts (False: the bank driver launches its own)
    attach: bool = True
    python: str = sys.executable
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class RunState:
    state: str = "idle"
    request: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    run_dir: str | None = None
    pid: int | None = None
    started_at: float | None = None  # monotonic
    ended_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    intervals: int = 0  # seconds of schedule reported so far
    result: dict[str, Any] | None = None
    outcome: str | None = None  # what the run's last line said: finished, stopped, failed
    error: str | None = None
    log: str | None = None


def build_spec(req: StartRequest, cfg: SimConfig) -> dict[str, Any]:
    """The run's spec: the shape file with the request's rate, duration and options, targeting the
    gateway's namespace without a reset (the running pipeline's ledger is not dropped)."""
    problems = []
    if req.rate > cfg.max_rate:
        problems.append({"loc": "rate", "msg": f"at most {cfg.max_rate:g} events/s on this gateway", "input": req.rate})
    if req.duration > cfg.max_duration_s:
        problems.append({"loc": "duration", "msg": f"at most {cfg.max_duration_s:g} s on this gateway",
                         "input": req.duration})
    if problems:
        raise BadRequest(problems)
    spec = tomllib.loads(cfg.shape.read_text(encoding="utf-8"))
    spec["name"] = req.name or "gateway-simulation"
    spec["description"] = f"started through the gateway's simulation API at {req.rate:g} events/s"
    spec["rate"] = {**spec.get("rate", {}), "profile": "constant", "rate": req.rate}
    spec["duration_s"] = req.duration
    spec["warmup_s"] = req.warmup
    spec["seed"] = req.seed if req.seed is not None else secrets.randbelow(2**31)
    spec["processes"] = req.processes
    if req.mix is not None:
        spec["ops"] = [{"name": k, "weight": w} for k, w in req.mix.items()]
    if req.workload_options:
        spec["workload_options"] = {**spec.get("workload_options", {}), **req.workload_options}
    options = dict(spec.get("target_options", {}))
    if cfg.attach:
        options.update(attach=True, namespace=cfg.namespace, reset=False, keep_topics=True)
        if cfg.group:
            options["group"] = cfg.group
        else:
            options["lag_interval_s"] = 0  # the running pipeline's group is not known: no lag gauge
    spec["target_options"] = options
    return spec


def check_spec(spec: dict[str, Any]) -> None:
    """Everything the harness would refuse, refused now (a 422, not a failed run a second later)."""
    from harness.plan import make_plan
    from harness.spec import SpecError, parse_spec

    try:
        make_plan(parse_spec(spec, "simulation request"), "simulation request")
    except SpecError as exc:
        raise BadRequest([{"loc": "spec", "msg": line.removeprefix("simulation request: ")}
                          for line in str(exc).splitlines()]) from None


def parse_request(body: bytes) -> StartRequest:
    if not body.strip():
        return StartRequest()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest([{"loc": "body", "msg": f"not valid JSON: {exc}"}]) from None
    if not isinstance(data, dict):
        raise BadRequest([{"loc": "body", "msg": "a JSON object is expected", "input": str(data)[:80]}])
    try:
        return StartRequest.model_validate(data)
    except ValidationError as exc:
        detail = []
        for err in exc.errors():
            item: dict[str, Any] = {"loc": ".".join(str(p) for p in err["loc"]) or "body",
                                    "msg": "unknown field" if err["type"] == "extra_forbidden" else err["msg"]}
            if err["type"] not in ("missing", "extra_forbidden") and not isinstance(err.get("input"), dict):
                item["input"] = err.get("input")
            detail.append(item)
        raise BadRequest(detail) from None


class Busy(RuntimeError):
    pass


class NotRunning(RuntimeError):
    pass


class Simulator:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.run = RunState()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._log: IO[bytes] | None = None
        self._stop_requested = False
        self._validating = False

    @property
    def active(self) -> bool:
        return self.run.state in ACTIVE

    async def start(self, body: bytes) -> dict[str, Any]:
        """Start a run; raises BadRequest (422) or Busy (409)."""
        if self.active or self._validating:
            raise Busy(f"a simulation is {self.run.state if self.active else 'starting'}: stop it first")
        req = parse_request(body)
        spec = build_spec(req, self.cfg)
        self._validating = True  # a refused request leaves the last run's status as it was
        try:
            await asyncio.to_thread(check_spec, spec)  # loads the target and workload classes
        finally:
            self._validating = False
        self.run = RunState(state="starting", request={**req.model_dump(exclude_none=True), "seed": spec["seed"]})
        self._proc = None
        self._stop_requested = False
        try:
            await self._spawn(spec)
        except BaseException as exc:
            self.run.state = "failed"
            self.run.error = f"{type(exc).__name__}: {exc}"
            raise
        SIMULATION_ACTIVE.set(1)
        return self.status()

    async def _spawn(self, spec: dict[str, Any]) -> None:
        self.cfg.runs_root.mkdir(parents=True, exist_ok=True)
        log_dir = self.cfg.runs_root / ".gateway"
        log_dir.mkdir(exist_ok=True)
        log_path = log_dir / f"simulation-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
        self._log = log_path.open("ab")
        self.run.log = str(log_path)
        job = {"spec": spec, "kafka": self.cfg.kafka, "runs_root": str(self.cfg.runs_root.resolve()),
               "attach": self.cfg.attach, "command": ["gateway", "POST /api/v1/simulation/start",
                                                       orjson.dumps(self.run.request).decode()]}
        env = {**os.environ, **self.cfg.env, ENV_DSN: self.cfg.dsn, "PYTHONUNBUFFERED": "1"}
        # its own session: a Ctrl-C in the gateway's terminal reaches the gateway, which stops the run once
        self._proc = await asyncio.create_subprocess_exec(
            self.cfg.python, "-m", "targets.bank.gateway.simrun", stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=self._log, env=env, start_new_session=True)
        assert self._proc.stdin is not None
        self._proc.stdin.write(orjson.dumps(job))
        await self._proc.stdin.drain()
        self._proc.stdin.close()
        self.run.pid = self._proc.pid
        self._reader = asyncio.create_task(self._follow(self._proc), name="simulation reader")
        log.info("simulation started: pid %d, %s", self._proc.pid, self.run.request)

    async def _follow(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        run = self.run
        try:
            while line := await proc.stdout.readline():
                try:
                    ev = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                self._on_event(run, ev)
            code = await proc.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
        self._ended(run, code)

    def _ended(self, run: RunState, code: int) -> None:
        """The run's process is gone: its state becomes what its last line said (a run is not over,
        and no other may start, while its process still writes its results or releases the pipeline)."""
        run.ended_at = time.monotonic()
        if run.outcome is not None:
            run.state = run.outcome
        elif self._stop_requested:
            run.state = "stopped"
        else:
            run.state = "failed"
            run.error = run.error or f"the run process exited with code {code}; see {run.log}"
        SIMULATIONS.labels(run.state).inc()
        SIMULATION_ACTIVE.set(0)
        log.info("simulation %s (%s): %s", run.run_id, run.state, run.error or run.counts)

    def _on_event(self, run: RunState, ev: dict[str, Any]) -> None:
        kind = ev.get("event")
        if kind == "started":
            run.run_id, run.run_dir = ev.get("run_id"), ev.get("run_dir")
            run.started_at = time.monotonic()
            if run.state == "starting":
                run.state = "running"
            elif self._stop_requested:  # asked to stop while it was starting
                self._interrupt()
        elif kind == "interval":
            for k, v in ev.items():
                if k not in ("event", "t", "in_flight") and isinstance(v, int):
                    run.counts[k] = run.counts.get(k, 0) + v
            run.in_flight = int(ev.get("in_flight") or 0)
            run.intervals = max(run.intervals, int(ev.get("t") or 0) + 1)
        elif kind == "finished":
            run.result = ev.get("summary")
            run.run_dir = ev.get("run_dir") or run.run_dir
            if run.result:  # the summary's counts are the books, including the last partial second
                run.counts = {**run.counts, **run.result["counts"]}
                run.counts["sent"] = run.counts["scheduled"] - run.counts.get("not_sent", 0)
            run.outcome = "stopped" if self._stop_requested else "finished"
            run.error = None if ev.get("ok") else "the run did not pass: see result.problems"
        elif kind == "failed":
            run.outcome = "failed"
            run.error = str(ev.get("error"))

    async def stop(self) -> dict[str, Any]:
        """Ask the run to stop (SIGINT: no new events, drain, results written); raises NotRunning."""
        if not self.active:
            raise NotRunning("no simulation is running")
        if self.run.state != "stopping":
            self._stop_requested = True
            # before "started" the run has no Ctrl-C handler yet: the signal waits for it
            if self.run.state == "running":
                self._interrupt()
            self.run.state = "stopping"
        return self.status()

    def _interrupt(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGINT)

    async def wait(self, timeout_s: float | None = None) -> None:
        """Until the current run's process has ended and been accounted for."""
        if self._reader is not None:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout_s)

    async def close(self) -> None:
        """At gateway shutdown: stop a run gracefully, then by force after `stop_timeout_s`."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        if self.active:
            with contextlib.suppress(NotRunning):
                await self.stop()
        try:
            await self.wait(self.cfg.stop_timeout_s)
        except TimeoutError:
            log.warning("simulation pid %d did not stop in %.0fs: SIGKILL", proc.pid, self.cfg.stop_timeout_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await self.wait(10)

    def status(self) -> dict[str, Any]:
        run = self.run
        now = run.ended_at or time.monotonic()
        elapsed = max(0.0, now - run.started_at) if run.started_at else 0.0
        c = run.counts
        sent = c.get("sent", 0)
        errors = c.get("error", 0) + c.get("timeout", 0) + c.get("not_sent", 0)
        out: dict[str, Any] = {
            "state": run.state,
            "run_id": run.run_id,
            "run_dir": run.run_dir,
            "request": run.request,
            "elapsed_s": round(elapsed, 3),
            "sent": sent,
            "ok": c.get("ok", 0),
            "errors": errors,
            "timeouts": c.get("timeout", 0),
            "in_flight": run.in_flight,
            # sent per second of schedule (start-up and drain are not sending time); the books' figure at the end
            "rate": {"target": run.request.get("rate"),
                     "observed": (run.result or {}).get("achieved_rate")
                     or (round(sent / run.intervals, 3) if run.intervals else 0.0)},
        }
        if run.result is not None:
            out["result"] = run.result
        if run.error:
            out["error"] = run.error
        if run.log:
            out["log"] = run.log
        return out
