"""Health check per the seed: database, cache and event bus, each up or down with a message."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

Check = Callable[[], Awaitable[None]]


async def check_all(checks: dict[str, Check], timeout_s: float = 2.0) -> dict[str, Any]:
    names = list(checks)
    outcomes = await asyncio.gather(*(asyncio.wait_for(checks[n](), timeout_s) for n in names), return_exceptions=True)
    results = [
        {
            "name": name,
            "status": "down" if isinstance(out, BaseException) else "up",
            "message": (str(out) or type(out).__name__) if isinstance(out, BaseException) else "OK",
        }
        for name, out in zip(names, outcomes, strict=True)
    ]
    return {
        "status": "up" if all(r["status"] == "up" for r in results) else "down",
        "checks": results,
        "timestamp": datetime.now(UTC).isoformat(),
    }
