"""The Locust user class whose presence on a worker means "host the generator".

Locust needs users; edabench's load does not come from them. A worker that runs at least one
`ScheduledOps` user hosts one generator process for the test (`harness.locust.hosting`), which
sends the spec's arrival schedule through the target's own driver. The number of users does not
shape the load, the spec's rate profile does: extra users on a worker sit idle, and a worker
without one hosts nothing. Give each worker one user (`edabench locust` does by default).
"""

from __future__ import annotations

import gevent
from locust import User, task

from harness.locust.plugin import install

IDLE_S = 3600.0


class ScheduledOps(User):
    """A placeholder user: while it lives, this worker's generator runs the schedule."""

    def run(self) -> None:  # type: ignore[override]  # the hosted generator does the work
        while True:
            gevent.sleep(IDLE_S)

    @task
    def idle(self) -> None:
        """Never run (`run` is replaced); Locust refuses a user class without a task."""


install()
