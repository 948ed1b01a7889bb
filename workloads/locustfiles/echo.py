"""Echo target, open model: 200 arrivals/s shared by the users, each measured from its intended time.

The echo service freezes 1 s every 5 s (base 20 ms), so 20% of the arrivals wait a uniform
0..1 s: truth p50 = 20 ms, p99 = 970 ms. Run: `edabench locust echo --users 4`.
"""

from locust import task

from harness.locust.users import OpenModelHttpUser

EDABENCH = {
    "name": "locust-echo",
    "target": "echo",
    "description": "Echo over HTTP with a 1 s stall every 5 s, driven by open-model Locust users",
    "duration_s": 20,
    "warmup_s": 2,
    "timeout_s": 5,
    "rate": {"rate": 200},
    "ops": [{"name": "echo"}],
    "target_options": {"transport": "http", "base_ms": 20, "stall_every_s": 5, "stall_for_s": 1},
    "slo": {"p50_ms": 30, "p99_ms": 1000, "max_error_rate": 0.001, "min_rate_ratio": 0.99},
}


class EchoOpen(OpenModelHttpUser):
    """Arrivals at the spec's rate divided by the user count, whatever the answers do."""

    @task
    def echo(self) -> None:
        self.client.get("/echo", name="echo")
