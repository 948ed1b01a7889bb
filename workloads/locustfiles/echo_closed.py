"""Ordinary closed-loop Locust users against an echo server: the comparison that under-reports.

Plain Locust, nothing of edabench: each user sends, waits for the answer, then paces itself to
5 requests/s. While the service freezes the users wait instead of sending, so most of a stall
never shows in Locust's numbers (coordinated omission). Run it against a running echo server:
`locust -f workloads/locustfiles/echo_closed.py --headless -u 10 -t 20s --host http://127.0.0.1:PORT`
(`python -m targets.echo.server --http-port PORT --stall-every-s 5 --stall-for-s 1`).
"""

from locust import FastHttpUser, constant_throughput, task


class EchoClosed(FastHttpUser):
    """10 of these at 5 req/s each aim at 50 req/s."""

    wait_time = constant_throughput(5)

    @task
    def echo(self) -> None:
        self.client.get("/echo", name="echo")
