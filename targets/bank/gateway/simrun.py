"""One simulation run, in a process of its own: `python -m targets.bank.gateway.simrun` (started by
the gateway's simulation API, never by hand).

Why a process: the run is the harness's own (`harness.engine.runner.execute` on a `Plan`), whose
generator must keep its schedule and whose Ctrl-C path (first SIGINT: stop sending, drain, write
the results) is exactly what `POST /api/v1/simulation/stop` needs. In the gateway's event loop
the run would compete with the WebSocket fan-out, and its SIGINT handler with the gateway's.

Protocol: a JSON job on stdin (no secrets: the DSN comes in `EDABENCH_POSTGRES_DSN`); JSON lines
on stdout: `started`, one `interval` a second, then `finished` or `failed`. Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import orjson

from targets.bank.db import ENV_DSN

log = logging.getLogger("gateway.simulation")

COUNTS = ("scheduled", "sent", "ok", "error", "timeout", "not_sent")


def brief(summary: dict[str, Any]) -> dict[str, Any]:
    """What the status endpoint shows of summary.json."""
    overall = summary.get("overall") or {}
    resp = overall.get("response_time_us") or {}
    return {
        "books_balanced": summary.get("books_balanced"),
        "interrupted": summary.get("interrupted"),
        "counts": {k: overall.get("counts", {}).get(k, 0) for k in ("scheduled", "ok", "error", "timeout",
                                                                     "not_sent")},
        "errors_by_kind": overall.get("counts", {}).get("errors", {}),
        "achieved_rate": overall.get("achieved_rate"),
        "p50_ms": _ms(resp.get("p50")),
        "p99_ms": _ms(resp.get("p99")),
        "problems": list((summary.get("verify") or {}).get("problems") or [])[:50],
        "generator_kept_up": (summary.get("generator") or {}).get("kept_up"),
    }


def _ms(us: Any) -> float | None:
    return None if us is None else round(float(us) / 1000, 3)


async def run_job(job: dict[str, Any], emit: Callable[[dict[str, Any]], None]) -> bool:
    from harness.engine.runner import RunOptions, execute
    from harness.plan import make_plan
    from harness.spec import parse_spec

    spec = parse_spec(job["spec"], "simulation request")  # attach = true: the bank driver starts nothing
    plan = make_plan(spec, "simulation request")
    services: dict[str, str | None] = {"kafka": job["kafka"], "postgres": os.environ[ENV_DSN]}

    def started(run_dir: Path, _spec: Any, processes: int) -> None:
        emit({"event": "started", "run_dir": str(run_dir), "run_id": run_dir.name, "processes": processes})

    def interval(line: dict[str, Any]) -> None:
        emit({"event": "interval", "t": line.get("t"), "in_flight": line.get("in_flight", 0),
              **{k: int(line.get(k, 0) or 0) for k in COUNTS}})

    outcome = await execute(plan, RunOptions(
        spec_path=None, processes=spec.processes, services=services, runs_root=Path(job["runs_root"]),
        command=list(job.get("command") or ["gateway-simulation"]), on_started=started, on_interval=interval))
    emit({"event": "finished", "ok": outcome.ok, "run_dir": str(outcome.run_dir), "summary": brief(outcome.summary)})
    return outcome.ok


def _die_with_parent() -> None:
    """A run whose gateway was killed must not go on loading the system."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main() -> int:
    # protocol lines on the original stdout; anything else printing to stdout lands in the log
    out: IO[bytes] = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    logging.basicConfig(level=os.environ.get("EDABENCH_LOG_LEVEL", "INFO"),
                        format="%(asctime)s simulation %(levelname)s %(name)s: %(message)s")
    _die_with_parent()
    # until the run installs its own Ctrl-C handler (stop sending, drain, write), SIGINT is not fatal;
    # the gateway sends it only after "started"
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def emit(event: dict[str, Any]) -> None:
        out.write(orjson.dumps(event) + b"\n")

    try:
        job = orjson.loads(sys.stdin.buffer.read())
        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        return 0 if asyncio.run(run_job(job, emit)) else 1
    except Exception as exc:
        log.exception("simulation failed")
        emit({"event": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 2


if __name__ == "__main__":
    sys.exit(main())
