"""Bank pipeline: Locust users produce bank events to Kafka and query the REST API.

`BankEvents` arrivals (open model) each produce one Avro event built by the bank workload
(accounts opened, deposits, withdrawals, transfers, closings) and wait for its outcome record:
the op is measured from its intended time to the outcome, and the pipeline's own
produce-to-persisted latency (the service's commit time minus the produce time, wall clock,
same host) is kept as an extra histogram, shown in the HDR tab. `BankReader` arrivals query
the accounts this process opened. The arrival rate is shared by all users (3 event users for
1 reader by weight). Run: `edabench locust bank --users 8` (starts Kafka, PostgreSQL, the service).
"""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

import gevent
from confluent_kafka import KafkaException
from locust import task

from harness.locust.runtime import STATE, target_options
from harness.locust.users import OpenModelHttpUser, OpenModelUser
from targets.bank.outcomes import error_kind
from workloads.bank.generator import BankWorkload
from workloads.locustfiles._bank_pipeline import BankPipeline

EDABENCH = {
    "name": "locust-bank",
    "target": "bank",
    "description": "Bank events through Kafka to the ledger, and REST queries, by Locust users",
    "duration_s": 20,
    "warmup_s": 2,
    "drain_timeout_s": 20,
    "timeout_s": 10,
    "rate": {"rate": 200},
    "ops": [{"name": "open", "weight": 10}, {"name": "deposit", "weight": 35}, {"name": "withdrawal", "weight": 25},
            {"name": "transfer", "weight": 28}, {"name": "close", "weight": 2}],
    "target_options": {"partitions": 3, "instances": 1},
    "workload_options": {"prepare": "workloads.locustfiles.bank_schemas:schema_ids"},
    "slo": {"p99_ms": 500, "max_error_rate": 0.0},
}
OPTIONS = target_options()
PIPELINE_METRIC = "produce_to_persisted"
_process: dict[str, Any] = {}


class PipelineError(Exception):
    """An outcome other than the expected one; `kind` is the harness's "status:reason"."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def _shared(environment: Any) -> tuple[BankPipeline, BankWorkload]:
    """One pipeline and one workload (shadow ledger) per Locust process, shared by its users."""
    if not _process:
        index = int(getattr(environment.runner, "worker_index", 0) or 0)
        seed = STATE.spec.seed if STATE.spec is not None else 1
        _process["workload"] = BankWorkload({}, seed, index)
        _process["pipeline"] = BankPipeline(OPTIONS["services"]["kafka"], OPTIONS["schema_ids"], str(index))
    return _process["pipeline"], _process["workload"]


class BankEvents(OpenModelUser):
    weight = 3

    def on_start(self) -> None:
        self.pipeline, self.workload = _shared(self.environment)
        spec = STATE.spec
        self.kinds = [o.name for o in spec.ops] if spec is not None else ["deposit"]
        self.weights = [o.weight for o in spec.ops] if spec is not None else [1.0]
        self.wait_s = (spec.timeout_s if spec is not None else 10.0) + 1.0  # the recorder times out first

    @task
    def event(self) -> None:
        kind, payload = self.workload.next_op(random.choices(self.kinds, self.weights)[0])
        started = time.perf_counter()
        op_id, result, sent_wall = self.pipeline.send(payload)
        error: str | None
        try:
            outcome = result.get(timeout=self.wait_s)
        except gevent.Timeout:
            self.pipeline.forget(op_id)
            self._fire(kind, started, PipelineError("timeout"))
            return
        except KafkaException:
            error = "produce_failed"
        else:
            error = error_kind(outcome.status, outcome.reason, payload.get("expect"))
            if outcome.processed_at_ns:
                STATE.observe(PIPELINE_METRIC, max(0, outcome.processed_at_ns - sent_wall) // 1000)
        self._fire(kind, started, PipelineError(error) if error else None)
        self.workload.on_result(SimpleNamespace(id=op_id, kind=kind, payload=payload), error)

    def _fire(self, kind: str, started: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="KAFKA", name=kind, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, exception=exception, context=self.context(), response=None)


class BankReader(OpenModelHttpUser):
    weight = 1
    host = f"http://127.0.0.1:{OPTIONS['api_ports'][0]}" if OPTIONS.get("api_ports") else None

    def on_start(self) -> None:
        _, self.workload = _shared(self.environment)

    @task(3)
    def compte(self) -> None:
        if not self.workload.active:
            return self.health()
        self.client.get(f"/api/v1/comptes/{random.choice(self.workload.active)}", name="compte")
        return None

    @task(2)
    def transactions(self) -> None:
        if not self.workload.active:
            return self.health()
        self.client.get(f"/api/v1/comptes/{random.choice(self.workload.active)}/transactions?limit=10",
                        name="transactions")
        return None

    @task(1)
    def client_comptes(self) -> None:
        if not self.workload.clients:
            return self.health()
        self.client.get(f"/api/v1/clients/{random.choice(self.workload.clients)}/comptes", name="client_comptes")
        return None

    def health(self) -> None:
        self.client.get("/api/v1/health", name="health")
