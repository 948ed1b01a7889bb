"""The service's Redis client and cache against a real Redis: replies go to their callers, a
script loads itself, a lost connection comes back, and the version fence holds."""

from __future__ import annotations

import asyncio
import secrets

from targets.cart.cache import CartCache
from targets.cart.resp import LeanRedis


def prefix() -> str:
    return f"test{secrets.token_hex(4)}:"


async def test_concurrent_commands_each_get_their_own_reply(embedded_redis: str) -> None:
    client, p = LeanRedis(embedded_redis), prefix()
    try:
        await asyncio.gather(*(client.execute("SET", f"{p}{n}", n, "EX", 60) for n in range(200)))
        values = await asyncio.gather(*(client.get(f"{p}{n}") for n in range(200)))
        assert values == [str(n).encode() for n in range(200)]
    finally:
        await client.aclose()


async def test_a_script_the_server_does_not_know_is_loaded_and_run(embedded_redis: str) -> None:
    client = LeanRedis(embedded_redis)
    try:
        await client.execute("SCRIPT", "FLUSH")
        script = client.script("return tonumber(ARGV[1]) + 1")
        assert await script(keys=[], args=[41]) == 42
        assert await script(keys=[], args=[1]) == 2  # by its SHA1 this time
    finally:
        await client.aclose()


async def test_after_a_lost_connection_the_next_command_reconnects(embedded_redis: str) -> None:
    client = LeanRedis(embedded_redis)
    try:
        await client.ping()
        assert client._proto is not None and client._proto.transport is not None
        client._proto.transport.abort()
        await asyncio.sleep(0)  # let the loop deliver connection_lost
        await client.ping()
        assert client._proto is not None and not client._proto.closed
    finally:
        await client.aclose()


async def test_the_cache_refuses_a_version_older_than_it_holds(embedded_redis: str) -> None:
    client = LeanRedis(embedded_redis)
    cache = CartCache(client, prefix(), ttl_s=60)
    try:
        assert await cache.put("c1", 5, b'{"version":5}', b'{"v":5}')
        assert not await cache.put("c1", 3, b'{"version":3}', b'{"v":3}')
        assert await cache.get("c1") == b'{"version":5}'
        assert await cache.get("c1", summary=True) == b'{"v":5}'
    finally:
        await client.aclose()


async def test_the_cache_takes_a_newer_version(embedded_redis: str) -> None:
    client = LeanRedis(embedded_redis)
    cache = CartCache(client, prefix(), ttl_s=60)
    try:
        await cache.put("c1", 5, b'{"version":5}', b"{}")
        assert await cache.put("c1", 6, b'{"version":6}', b"{}")
        assert await cache.get("c1") == b'{"version":6}'
    finally:
        await client.aclose()
