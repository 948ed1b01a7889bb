"""The bank pipeline (Kafka -> ledger in PostgreSQL), as `edabench run workloads/bank-smoke.toml` runs it.

`edabench locust bank` starts the same services and bank service and sends the same schedule
through the same bank driver (Avro events, completed by their outcome records); only the
front end differs: Locust's master, workers and web UI.
"""

from harness.locust.users import ScheduledOps

EDABENCH = "../bank-smoke.toml"

__all__ = ["ScheduledOps"]
