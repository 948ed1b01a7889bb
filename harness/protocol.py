"""The seam between the harness and a system under test: everything a driver may use.

Modelled on OpenMessaging Benchmark's driver API: a target implements a small `Driver` and
nothing else of the harness. The harness decides *when* an op is sent and *how long* it took; the
driver decides *how* it is sent and how its completion is recognised.

Completion comes in two shapes:

* synchronous: `send()` returns a `Result` (an HTTP response, a DB commit);
* asynchronous: `send()` returns `None` once the op is handed off (a Kafka produce), and the
  driver later calls `ctx.completions.complete(op.id, ...)` (or `complete_many`) when the
  outcome arrives, e.g. an outcome record on a topic, correlated by the op id.

A driver may be a plain class with `start`, `send` and `stop` (duck typing is enough), or
subclass `Driver` to inherit no-op defaults for everything optional. Either way the harness
checks it once, when it is loaded (`check_driver`), and says what is missing.

Optional entries, all with defaults on `Driver`:

* `send_batch(ops)`: synchronous; takes every op due at one wake-up of the scheduler, for
  transports that only enqueue (a librdkafka producer). Completions come later, through
  `ctx.completions`. When present the harness calls it instead of `send` (a driver whose
  transport for this run has only a per-op path sets `self.send_batch = None` in `start`).
* `launch(options, services, run_dir)`: an async context manager that starts the system under
  test once per run, in the harness's process, before any driver starts; the dict it yields is
  merged into every driver's `ctx.options` (its `"pids"` entry, `{name: pid}`, is sampled for
  CPU and memory; a `"problems"` list it keeps appending to, e.g. service deaths and restarts,
  is copied into the run's problems at the end and not passed to drivers).
* `needs_for(options)`: the services ("kafka", "postgres", "redis") these options need, when the
  class attribute `needs` cannot say.
* `Options`: a pydantic model of `[target_options]`; unknown or invalid options are refused
  before anything starts, naming the field.
* `verify()`: after the drain, check the target's state; returns the problems found.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict


class Op:
    """One scheduled operation.

    `id` is an integer unique within a run across its generator processes (the op's index in the
    run's arrival schedule); `intended_ns` is the monotonic instant the schedule wanted it sent,
    `sent_ns` the instant the driver was called. Slotted and built once per op: it is the one
    allocation the hot path makes for every op.
    """

    __slots__ = ("id", "intended_ns", "kind", "payload", "sent_ns")

    def __init__(self, id: int, kind: str, payload: Any = None, intended_ns: int = 0, sent_ns: int = 0) -> None:
        self.id = id
        self.kind = kind
        self.payload = payload
        self.intended_ns = intended_ns
        self.sent_ns = sent_ns

    def __repr__(self) -> str:
        return f"Op(id={self.id}, kind={self.kind!r}, intended_ns={self.intended_ns})"


@dataclass(slots=True, frozen=True)
class Result:
    """What a synchronous `send()` returns. `error` is a short kind, e.g. "http_503"."""

    error: str | None = None
    completed_ns: int | None = None  # monotonic ns; None means "now"


OK = Result()


class Completions(Protocol):
    """Handed to a driver at start; reports asynchronous completions and extra measurements."""

    def complete(self, op_id: int, error: str | None = None, completed_ns: int | None = None) -> None:
        """Mark `op_id` finished. Unknown or already-finished ids are ignored and counted as late."""
        ...

    def complete_many(self, op_ids: Sequence[int], completed_ns: int | None = None,
                      errors: Sequence[str | None] | None = None) -> None:
        """Finish several ops at once (one completion instant for all, or now)."""
        ...

    def observe(self, metric: str, value_us: int) -> None:
        """Record a sample into an extra named HDR histogram (e.g. "read_your_writes_lag")."""
        ...

    def gauge(self, name: str, value: float) -> None:
        """Report a gauge (e.g. consumer lag) sampled into the per-second timeseries."""
        ...

    def expect(self, metric: str, n: int = 1) -> None:
        """Count `n` deliveries that `metric` should see (missing ones are reported, not silent)."""
        ...


Supervise = Callable[[Callable[[], Coroutine[Any, Any, None]], str], None]


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
    #: an op not complete this long after its intended start is a timeout (the spec's timeout_s)
    timeout_s: float = 30.0
    #: start a background task the harness watches: if it raises, the traceback is logged, the
    #: run's problems name it and the run stops (a driver never stalls silently)
    supervise: Supervise | None = None

    def background(self, factory: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        """Run `factory()` as a supervised background task (a plain task when unsupervised)."""
        if self.supervise is not None:
            self.supervise(factory, name)
        else:  # a driver used outside the harness (a test, a script)
            import asyncio

            _orphans.add(task := asyncio.get_running_loop().create_task(factory(), name=name))
            task.add_done_callback(_orphans.discard)


_orphans: set[Any] = set()


class NoOptions(BaseModel):
    """Target options are free-form unless a driver declares its own `Options` model."""

    model_config = ConfigDict(extra="allow")


class Driver:
    """Base class with no-op defaults; subclass it, or write a plain class with the same names."""

    name: ClassVar[str] = ""
    #: services the harness must provide: any of "kafka", "postgres", "redis"
    needs: ClassVar[tuple[str, ...]] = ()
    #: pydantic model of `[target_options]` (extra="forbid" to refuse unknown keys)
    Options: ClassVar[type[BaseModel]] = NoOptions

    @classmethod
    def needs_for(cls, options: dict[str, Any]) -> Iterable[str]:
        return cls.needs

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, options: dict[str, Any], services: dict[str, str], run_dir: str
                     ) -> AsyncIterator[dict[str, Any]]:
        yield {}

    async def start(self, ctx: DriverContext) -> None:
        """Connect; keep `ctx` for completions."""

    async def send(self, op: Op) -> Result | None:
        """Send one op. Return a Result for synchronous completion, None if it completes later.

        Raise to signal an error at send time (counted as error, kind = exception class name).
        Must not block the event loop.
        """
        raise NotImplementedError

    async def stop(self) -> None:
        """Release everything started in `start`, also after a failed run."""

    async def verify(self) -> list[str]:
        """After the drain: problems found in the target's state (none by default)."""
        return []


class Workload(Protocol):
    """Optional op generator: says *what* is sent, found by name (``edabench.workloads``).

    Built as ``Workload(options, seed, process_index)``. Without one, the harness sends ops of
    the spec's `[[ops]]` kinds with an empty payload.
    """

    def next_op(self, kind: str) -> tuple[str, Any]:
        """(kind, payload) for an op the mix asked to be of `kind`; may return another kind.

        Called at the op's intended time: keep it cheap."""
        ...

    def on_result(self, op: Op, error: str | None) -> None:
        """Feedback when an op finishes (ok when `error` is None); not called for timeouts."""
        ...

    async def verify(self, driver: Any) -> list[str]:
        """After the drain: compare the target's state with the workload's shadow model."""
        ...


class DriverError(TypeError):
    """A driver class that cannot be used; the message says what it lacks."""


@dataclass(frozen=True, slots=True)
class DriverShape:
    """What the harness found on a driver class, checked once at load."""

    cls: type[Any]
    send_is_coroutine: bool
    has_batch: bool
    has_verify: bool
    options_model: type[BaseModel]

    def needs(self, options: dict[str, Any]) -> set[str]:
        needs_for = getattr(self.cls, "needs_for", None)
        if callable(needs_for):
            return set(needs_for(options))
        return set(getattr(self.cls, "needs", ()))

    def launch(self, options: dict[str, Any], services: dict[str, str], run_dir: str
               ) -> contextlib.AbstractAsyncContextManager[dict[str, Any]]:
        launch = getattr(self.cls, "launch", None)
        if launch is None:
            return _nothing_launched()
        return launch(options, services, run_dir)


@contextlib.asynccontextmanager
async def _nothing_launched() -> AsyncIterator[dict[str, Any]]:
    yield {}


def check_driver(cls: Any, where: str = "") -> DriverShape:
    """Validate a driver class; raises DriverError naming the missing or wrong member."""
    label = where or getattr(cls, "__name__", repr(cls))
    if not isinstance(cls, type):
        raise DriverError(f"{label}: a target must be a class, got {type(cls).__name__}")
    batch = getattr(cls, "send_batch", None)
    send = getattr(cls, "send", None)
    if batch is None and not callable(send):
        raise DriverError(f"{label}: a driver needs a `send(op)` method (or `send_batch(ops)`)")
    if send is Driver.send and batch is None:
        raise DriverError(f"{label}: `send(op)` is not implemented")
    for method in ("start", "stop"):
        fn = getattr(cls, method, None)
        if fn is None:
            raise DriverError(f"{label}: a driver needs an async `{method}` method")
        if not inspect.iscoroutinefunction(fn):
            raise DriverError(f"{label}: `{method}` must be `async def`")
    model = getattr(cls, "Options", NoOptions)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise DriverError(f"{label}: `Options` must be a pydantic model")
    return DriverShape(cls=cls, send_is_coroutine=inspect.iscoroutinefunction(send) if send else False,
                       has_batch=callable(batch), has_verify=callable(getattr(cls, "verify", None)),
                       options_model=model)


Verify = Callable[[], Awaitable[list[str]]]
