"""Cache-aside for cart queries in Redis, with a version fence against stale refills.

Plain delete-on-write has a race: a reader that loaded version n before a write can refill
the cache after the writer deleted it, serving n for the whole TTL. Here every writer (the
command handler in sync mode, the projector in async mode) raises a per-cart version fence
and deletes the entries in one script; a refill is accepted only if its version is not below
the fence. So after a write is acknowledged, no query answers an older version from cache.
"""

from __future__ import annotations

from redis.asyncio import Redis

_FILL = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) < fence then return 0 end
for i = 2, #KEYS do redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[2]) end
return 1
"""

_INVALIDATE = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > fence then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end
for i = 2, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


class CartCache:
    """Cached cart view and summary (JSON bytes as served), keyed per cart."""

    def __init__(self, redis: Redis, prefix: str = "cart:", ttl_s: int = 300) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s  # the seed's 5 minutes
        self.fence_ttl_s = ttl_s * 2  # outlives any refill that could still be in flight
        self._fill = redis.register_script(_FILL)
        self._invalidate = redis.register_script(_INVALIDATE)
        self.hits = 0
        self.misses = 0

    def _keys(self, cart_id: str) -> list[str]:
        p = self.prefix + cart_id
        return [p + ":fence", p, p + ":summary"]

    async def get(self, cart_id: str, summary: bool = False) -> bytes | None:
        value = await self.redis.get(self.prefix + cart_id + (":summary" if summary else ""))
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    async def fill(self, cart_id: str, version: int, view: bytes, summary: bytes) -> bool:
        return bool(await self._fill(keys=self._keys(cart_id), args=[version, self.ttl_s, view, summary]))

    async def invalidate(self, cart_id: str, version: int) -> None:
        await self._invalidate(keys=self._keys(cart_id), args=[version, self.fence_ttl_s])

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
