"""Services given by URL: where they come from (argument or environment) and whether they answer."""

from __future__ import annotations

import asyncio
import os
from urllib.parse import urlsplit, urlunsplit

from infra import kafka, postgres, redis
from infra.errors import StackError

SERVICES = ("kafka", "postgres", "redis")

ENV_VARS = {
    "kafka": "EDABENCH_KAFKA_BOOTSTRAP",
    "postgres": "EDABENCH_POSTGRES_DSN",
    "redis": "EDABENCH_REDIS_URL",
}

PROBES = {"kafka": kafka.probe, "postgres": postgres.probe, "redis": redis.probe}


def from_env(service: str) -> str | None:
    value = os.environ.get(ENV_VARS[service], "").strip()
    return value or None


def redact(url: str) -> str:
    """The URL with any password masked, safe to print in errors and reports."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def check(service: str, url: str, timeout_s: float = 10.0) -> None:
    """Raise StackError naming the service, the URL and the cause unless a real round trip succeeds."""
    try:
        await asyncio.wait_for(PROBES[service](url, timeout_s), timeout_s)
    except TimeoutError as exc:
        raise StackError(f"{service} at {redact(url)} did not answer within {timeout_s:.0f}s") from exc
    except Exception as exc:
        cause = f"{type(exc).__name__}: {exc}".rstrip(": ")
        raise StackError(f"{service} at {redact(url)} is not reachable: {cause}") from exc
