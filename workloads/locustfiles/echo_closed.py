"""Echo target with ordinary Locust users (closed loop): the comparison that under-reports.

Each user sends, waits for the answer, then paces itself to 10 requests/s; while the service
freezes, the users wait instead of sending, so most of the stall never shows in the numbers
(coordinated omission). Kept to show the difference; `summary.json` marks it `closed_loop`.
"""

from locust import FastHttpUser, constant_throughput, task

import harness.locust.plugin

harness.locust.plugin.install()

EDABENCH = {
    "name": "locust-echo-closed",
    "target": "echo",
    "description": "Echo with a 1 s stall every 5 s, closed-loop Locust users (constant_throughput)",
    "duration_s": 20,
    "warmup_s": 2,
    "timeout_s": 5,
    "rate": {"rate": 200},
    "ops": [{"name": "echo"}],
    "target_options": {"transport": "http", "base_ms": 20, "stall_every_s": 5, "stall_for_s": 1},
    "slo": {"p99_ms": 1000},
}


class EchoClosed(FastHttpUser):
    """20 of these at 10 req/s each aim at 200 req/s, like the open-model file."""

    wait_time = constant_throughput(10)

    @task
    def echo(self) -> None:
        self.client.get("/echo", name="echo")
