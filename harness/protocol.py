"""The seam between the harness and a system under test.

Modelled on OpenMessaging Benchmark's driver API: a target implements a small
`Driver` and nothing else of the harness. The harness decides *when* an op is
sent and *how long* it took; the driver decides *how* it is sent and how its
completion is recognised.

Completion comes in two shapes:

* synchronous: `send()` returns a `Result` (an HTTP response, a DB commit);
* asynchronous: `send()` returns `None` once the op is handed off (a Kafka
  produce), and the driver later calls `Completions.complete(op_id, ...)` when
  the outcome arrives (an outcome record on a topic, correlated by op id).

A target is found by name through the ``edabench.targets`` entry-point group,
so a user's package can add one without touching the harness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable


@dataclass(slots=True)
class Op:
    """One scheduled operation. `id` is unique across the processes of a run."""

    id: str
    kind: str
    payload: Any = None
    intended_ns: int = 0  # monotonic ns at which the schedule wanted it sent
    sent_ns: int = 0  # monotonic ns at which the driver was actually called


@dataclass(slots=True, frozen=True)
class Result:
    """What a synchronous `send()` returns. `error` is a short kind, e.g. "http_503"."""

    error: str | None = None
    completed_ns: int | None = None  # monotonic ns; None means "now"


OK = Result()


class Completions(Protocol):
    """Handed to a driver at start; used to report asynchronous completions."""

    def complete(self, op_id: str, error: str | None = None, completed_ns: int | None = None) -> None:
        """Mark `op_id` finished. Unknown or already-finished ids are ignored and counted."""
        ...

    def observe(self, metric: str, value_us: int) -> None:
        """Record a sample into an extra named HDR histogram (e.g. "read_your_writes_lag")."""
        ...

    def gauge(self, name: str, value: float) -> None:
        """Report a gauge (e.g. consumer lag) sampled into the per-second timeseries."""
        ...


@dataclass(slots=True)
class DriverContext:
    """What a driver gets to know about the run: its options and the services it may use."""

    options: dict[str, Any]
    completions: Completions
    services: dict[str, str] = field(default_factory=dict)  # kafka/postgres/redis URLs
    run_dir: str | None = None
    process_index: int = 0
    process_count: int = 1
    run_id: str = ""
    #: every op id this process sends starts with it (filter shared reply topics with it)
    op_id_prefix: str = ""


@runtime_checkable
class Driver(Protocol):
    """A target's driver. One instance per generator process."""

    name: ClassVar[str]
    #: services the driver needs the harness to provide: any of "kafka", "postgres", "redis"
    needs: ClassVar[tuple[str, ...]]

    async def start(self, ctx: DriverContext) -> None:
        """Connect, create topics, start the target's processes if it owns them."""
        ...

    async def send(self, op: Op) -> Result | None:
        """Send one op. Return a Result for synchronous completion, None if it completes later.

        Raise to signal an error at send time (counted as error, kind = exception class name).
        Must not block the event loop.
        """
        ...

    async def stop(self) -> None:
        """Release everything started in `start`, also after a failed run."""
        ...

    # Optional (looked up with getattr, not required):
    #
    # send_nowait(op) -> Result | None   (instance method, synchronous)
    #     for drivers that only enqueue the op (e.g. into a Kafka producer pump): when present the
    #     harness calls it instead of `send`, without creating a Task per op.
    #
    #
    # needs_for(options) -> Iterable[str]
    #     services needed for these target options, when `needs` alone cannot say.
    # launch(options, services, run_dir) -> AsyncContextManager[dict]
    #     start the system under test once per run, in the parent process, before any
    #     driver starts; the dict it yields is merged into every driver's ctx.options
    #     (its "pids" entry, {name: pid}, is sampled for CPU and memory).


class Verifier(Protocol):
    """Optional: a driver with `verify()` checks the target's state after the drain."""

    async def verify(self) -> list[str]:
        """Return the list of problems found (empty when consistent)."""
        ...


class Workload(Protocol):
    """Optional op generator: says *what* is sent, found by name (``edabench.workloads``).

    Built as ``Workload(options, seed, process_index)``. Without one, the harness sends
    ops of the spec's `[[ops]]` kinds with an empty payload.
    """

    def next_op(self, kind: str) -> tuple[str, Any]:
        """Return (kind, payload) for an op the mix asked to be of `kind`.

        May return another kind (e.g. "open" while no account exists yet).
        Called at the op's intended time: keep it cheap.
        """
        ...

    def on_result(self, op: Op, error: str | None) -> None:
        """Feedback when an op finishes (ok when `error` is None); not called for timeouts."""
        ...

    async def verify(self, driver: Driver) -> list[str]:
        """After the drain: compare the target's state with the workload's shadow model."""
        ...
