"""External mode: services given by URL are checked with a real round trip; bad URLs fail readably."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.errors import StackError
from infra.stack import Stack

pytestmark = pytest.mark.usefixtures("infra_state_dir")


async def test_explicit_urls_are_used_and_nothing_is_started(
    external_postgres: str, external_redis: str, run_dir: Path
) -> None:
    async with Stack(
        needs={"postgres", "redis"}, run_dir=run_dir, postgres=external_postgres, redis=external_redis
    ) as stack:
        assert stack.urls == {"postgres": external_postgres, "redis": external_redis}
        assert stack.external == {"postgres", "redis"}
        assert stack.embedded == set() and stack.pids == {}
    assert not (run_dir / "logs").exists()


async def test_env_vars_select_external_services(
    external_redis: str, run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDABENCH_REDIS_URL", external_redis)
    async with Stack(needs={"redis"}, run_dir=run_dir) as stack:
        assert stack.urls == {"redis": external_redis}
        assert stack.external == {"redis"}


async def test_explicit_url_beats_env_var(external_redis: str, run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDABENCH_REDIS_URL", "redis://127.0.0.1:1/0")
    async with Stack(needs={"redis"}, run_dir=run_dir, redis=external_redis) as stack:
        assert stack.urls["redis"] == external_redis


@pytest.mark.parametrize(
    ("service", "url"),
    [
        ("postgres", "postgresql://postgres@127.0.0.1:1/postgres"),
        ("redis", "redis://127.0.0.1:1/0"),
        ("kafka", "127.0.0.1:1"),
    ],
)
async def test_unreachable_url_names_url_and_cause(service: str, url: str, run_dir: Path) -> None:
    with pytest.raises(StackError) as err:
        async with Stack(needs={service}, run_dir=run_dir, **{service: url}):
            pass
    text = str(err.value)
    assert url in text
    assert service in text
    assert "not reachable" in text or "did not answer" in text


async def test_password_is_not_printed(run_dir: Path) -> None:
    with pytest.raises(StackError) as err:
        await Stack(needs={"postgres"}, run_dir=run_dir, postgres="postgresql://u:s3cret@127.0.0.1:1/db").start()
    assert "s3cret" not in str(err.value)
    assert "postgresql://u:***@127.0.0.1:1/db" in str(err.value)


async def test_one_failure_stops_the_embedded_siblings(run_dir: Path) -> None:
    stack = Stack(needs={"redis", "postgres"}, run_dir=run_dir, postgres="postgresql://postgres@127.0.0.1:1/x")
    with pytest.raises(StackError, match=re.escape("127.0.0.1:1")):
        await stack.start()
    assert stack.processes == {}
