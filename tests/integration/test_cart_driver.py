"""CartDriver with the cart workload against a real service: start, send, verify, stop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.protocol import DriverContext, Op
from targets.cart.driver import CartDriver
from targets.cart.testing import temp_database
from workloads.cart.sessions import CartWorkload

MIX = ["browse", "view", "view", "summary", "history", "add", "add", "add", "update", "remove", "clear"]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        self.calls.append(("complete", op_id))

    def observe(self, metric: str, value_us: int) -> None:
        self.calls.append(("observe", metric))

    def gauge(self, name: str, value: float) -> None:
        self.calls.append(("gauge", name))


@pytest.fixture(scope="module")
def database(embedded_postgres: str) -> Iterator[str]:
    with temp_database(embedded_postgres) as dsn:
        yield dsn


async def run_sessions(driver: CartDriver, workload: CartWorkload, n: int, concurrency: int) -> dict[str, int]:
    rng = random.Random(0)
    errors: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            kind, payload = workload.next_op(rng.choice(MIX))
            op = Op(str(i), kind, payload)
            result = await driver.send(op)
            workload.on_result(op, result.error)
            if result.error:
                errors[result.error] = errors.get(result.error, 0) + 1

    await asyncio.gather(*(one(i) for i in range(n)))
    return errors


@pytest.mark.parametrize(
    ("options", "allowed"),
    [
        ({"sessions": 30}, set()),
        ({"sessions": 5, "tabs": 4, "if_match_rate": 0.5}, {"http_409", "http_404"}),
    ],
    ids=["sessions", "multi-tab-races"],
)
async def test_workload_verifies_clean_against_the_service(
    database: str, embedded_redis: str, tmp_path: Path, options: dict, allowed: set[str]
) -> None:
    recorder = Recorder()
    driver = CartDriver()
    ctx = DriverContext(
        options={"workers": 2, "snapshot_every": 7, "cache_prefix": f"t{tmp_path.name[-6:]}:"},
        completions=recorder,
        services={"postgres": database, "redis": embedded_redis},
        run_dir=str(tmp_path),
    )
    await driver.start(ctx)
    try:
        workload = CartWorkload(options, seed=11, process_index=0)
        errors = await run_sessions(driver, workload, 800, concurrency=16)
        assert set(errors) <= allowed
        assert await workload.verify(driver) == []
        stats = workload.stats()
        assert stats["acked"] > 100 and stats["stale_reads"] == 0
        if allowed:
            assert stats["conflicts"] > 0  # the races really happened
    finally:
        await driver.stop()
    assert driver.service is None
    assert "Traceback" not in (tmp_path / "logs" / "cart-service-0.log").read_text()
