"""The run directory and run.json, built in one place for every front end.

run.json records what ran (spec, resolved configuration, command, environment, git SHA, start and
end). Secrets never reach it: passwords in URLs and values under secret-looking keys are masked
before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import subprocess
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

SCHEMA = "edabench.run/1"
PACKAGES = ("edabench", "aiokafka", "confluent-kafka", "asyncpg", "hdrhistogram", "orjson", "fastavro",
            "uvloop", "locust", "redis", "uvicorn", "aiohttp")
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd)=([^\s&;]+)")
_SECRET_KEYS = re.compile(r"(?i)(password|passwd|secret|token|api_key|apikey|credential)")
MASK = "***"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def redact(value: Any) -> Any:
    """A copy of `value` with passwords masked: in URLs (user:pw@), `password=` pairs and secret keys."""
    if isinstance(value, str):
        return _KV_PASSWORD.sub(lambda m: f"{m.group(1)}={MASK}",
                                _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value))
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and _SECRET_KEYS.search(k) and v else redact(v))
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def make_run_dir(name: str, root: str | Path = "runs") -> Path:
    """`<root>/<UTC stamp>-<name>[-n]/logs`, created atomically (two runs at once get two dirs)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "run"
    Path(root).mkdir(parents=True, exist_ok=True)
    base = Path(root) / f"{stamp}-{safe}"
    path, n = base, 1
    while True:
        try:
            path.mkdir()
            break
        except FileExistsError:
            n += 1
            path = base.with_name(f"{base.name}-{n}")
    (path / "logs").mkdir()
    return path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[2], check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def environment() -> dict[str, Any]:
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "load_average": load,
        "packages": packages,
        "git_sha": _git_sha(),
    }


def write_json(path: Path, data: Any) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str))


class RunRecord:
    """run.json of one run: written at the start, updated as services come up, closed at the end."""

    def __init__(self, run_dir: Path, spec: Any, spec_path: str | None, command: list[str], processes: int,
                 front_end: str = "edabench", extra_config: dict[str, Any] | None = None) -> None:
        self.path = run_dir / "run.json"
        self.data: dict[str, Any] = {
            "schema": SCHEMA,
            "name": spec.name,
            "run_id": run_dir.name,
            "front_end": front_end,
            "spec": spec.model_dump(mode="json"),
            "spec_path": spec_path,
            "config": {
                "rate": spec.rate.rate,
                "profile": spec.rate.profile,
                "duration_s": spec.duration_s,
                "warmup_s": spec.warmup_s,
                "processes": processes,
                "closed_loop": False,
                "services": {},
                "embedded": [],
                **(extra_config or {}),
            },
            "command": command,
            "environment": environment(),
            "started_at": utc_now(),
            "ended_at": None,
            "interrupted": False,
        }
        self.write()

    def services(self, urls: dict[str, str], embedded: list[str]) -> None:
        self.data["config"]["services"] = dict(urls)
        self.data["config"]["embedded"] = sorted(embedded)
        self.write()

    def schedule_started(self, slack_s: float = 0.2) -> None:
        """When the schedule starts (wall clock, as started_at): reports align other clocks on it."""
        from datetime import timedelta

        self.data["schedule_started_at"] = (datetime.now(UTC) + timedelta(seconds=slack_s)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        self.write()

    def end(self, interrupted: bool) -> None:
        self.data["ended_at"] = utc_now()
        self.data["interrupted"] = interrupted
        self.write()

    def write(self) -> None:
        write_json(self.path, redact(self.data))
