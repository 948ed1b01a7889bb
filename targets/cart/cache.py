"""Write-through cache for cart queries in Redis, with a version fence against stale writes.

Whoever produces a new version of a cart (the command handler in sync mode, the projector in
async mode, a reader refilling after a miss) stores its view and summary through one script
that first compares the version with a per-cart fence: an entry older than the fence is
refused, a newer one raises the fence. So two workers' writes landing in either order, or a
reader's late refill of what it loaded before a write, can never put an older version back;
after a write is acknowledged no query answers an older version from cache. Writing the new
version (rather than deleting the entry) means the next read is a hit, not a database query.
"""

from __future__ import annotations

from targets.cart.resp import LeanRedis

_PUT = """
local fence = tonumber(redis.call('GET', KEYS[1]) or '0')
local version = tonumber(ARGV[1])
if version < fence then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[2])
redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[2])
return 1
"""


class CartCache:
    """Cached cart view and summary (JSON bytes as served), keyed per cart."""

    def __init__(self, redis: LeanRedis, prefix: str = "cart:", ttl_s: int = 300) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s  # the seed's 5 minutes
        self.fence_ttl_s = ttl_s * 2  # outlives any entry, so an expired entry cannot come back older
        self._put = redis.script(_PUT)
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

    async def put(self, cart_id: str, version: int, view: bytes, summary: bytes) -> bool:
        """Store version `version` unless a newer one is there already; False if refused."""
        args: list[bytes | str | int] = [version, self.ttl_s, self.fence_ttl_s, view, summary]
        return bool(await self._put(keys=self._keys(cart_id), args=args))

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
