"""Cart shopper sessions (CQRS over HTTP), as `edabench run workloads/cart-smoke.toml` runs them.

`edabench locust cart` starts PostgreSQL, Redis and the cart service, and sends the cart
workload's sessions through the cart driver on the spec's schedule.
"""

from harness.locust.users import ScheduledOps

EDABENCH = "../cart-smoke.toml"

__all__ = ["ScheduledOps"]
