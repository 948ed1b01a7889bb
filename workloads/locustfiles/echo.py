"""Echo over HTTP with a 1 s stall every 5 s: the spec `edabench run workloads/echo-http.toml` runs.

`edabench locust echo` runs it with Locust's master, workers and web UI (`--web`): the arrivals
are sent on schedule by the generator each worker hosts, with the echo target's own driver.
"""

from harness.locust.users import ScheduledOps

EDABENCH = "../echo-http.toml"

__all__ = ["ScheduledOps"]
