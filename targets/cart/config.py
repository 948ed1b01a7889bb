"""Service configuration, passed from the command line to each server worker."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass

ENV = "CART_SERVICE_CONFIG"


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    postgres: str
    redis: str
    kafka: str | None = None
    mode: str = "sync"  # "sync": projection in the write transaction; "async": outbox -> Kafka -> projector
    snapshot_every: int = 50
    cache_ttl_s: int = 300
    cache_prefix: str = "cart:"
    max_retries: int = 5
    max_body_bytes: int = 16 * 1024
    body_timeout_s: float = 10.0  # a body that does not arrive within this is answered 408
    max_inflight: int = 64  # requests in progress per worker; past it: 503 with Retry-After
    pool_size: int = 10
    catalogue_size: int = 500
    topic: str = "cart-events"
    aggregate_cache: int = 0  # carts kept in process after a write (0: always load from the store)

    @property
    def projector_group(self) -> str:
        return self.topic + "-projector"

    def to_env(self) -> None:
        os.environ[ENV] = json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServiceConfig:
        return cls(**json.loads(os.environ[ENV]))
