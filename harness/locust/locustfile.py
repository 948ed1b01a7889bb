"""The locustfile `edabench locust` runs for a workload TOML or a bare `--host URL`.

The spec comes from the edabench command (through the master), so this file only names the user
class. A worker started by hand on another machine may use it too:
`locust -f $(python -c 'import harness.locust.locustfile as m; print(m.__file__)') --worker ...`.
"""

from harness.locust.users import ScheduledOps

__all__ = ["ScheduledOps"]
