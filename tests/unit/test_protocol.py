"""The seam (harness/protocol.py): a driver is checked once, at load, and the error says what it lacks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from benchmarks.produce_driver import NullDriver
from harness.protocol import OK, Driver, DriverContext, DriverError, NoOptions, Op, Result, check_driver


class Ping:
    """The smallest driver: a plain class with the three async methods."""

    async def start(self, ctx: DriverContext) -> None:
        self.ctx = ctx

    async def send(self, op: Op) -> Result | None:
        return OK

    async def stop(self) -> None:
        pass


def driver_error(cls: Any, where: str = "") -> str:
    with pytest.raises(DriverError) as info:
        check_driver(cls, where)
    return str(info.value)


# -- what check_driver refuses ------------------------------------------------------------------------


def test_a_target_that_is_not_a_class_is_refused() -> None:
    async def send(op: Op) -> Result:
        return OK

    assert driver_error(send, "mypkg:send") == "mypkg:send: a target must be a class, got function"


def test_a_driver_without_send_is_refused_naming_send_and_send_batch() -> None:
    class NoSend:
        async def start(self, ctx: DriverContext) -> None: ...
        async def stop(self) -> None: ...

    assert driver_error(NoSend) == "NoSend: a driver needs a `send(op)` method (or `send_batch(ops)`)"


def test_a_driver_base_subclass_that_does_not_implement_send_is_refused() -> None:
    class Lazy(Driver):
        pass

    assert driver_error(Lazy) == "Lazy: `send(op)` is not implemented"


@pytest.mark.parametrize("missing", ["start", "stop"])
def test_a_driver_without_start_or_stop_is_refused_naming_it(missing: str) -> None:
    members = {"send": Ping.send, "start": Ping.start, "stop": Ping.stop}
    del members[missing]
    cls = type("Partial", (), members)
    assert driver_error(cls) == f"Partial: a driver needs an async `{missing}` method"


@pytest.mark.parametrize("sync", ["start", "stop"])
def test_a_sync_start_or_stop_is_refused(sync: str) -> None:
    def plain(self: Any, *args: Any) -> None:
        return None

    cls = type("Blocking", (Ping,), {sync: plain})
    assert driver_error(cls) == f"Blocking: `{sync}` must be `async def`"


def test_options_that_are_not_a_pydantic_model_are_refused() -> None:
    cls = type("Loose", (Ping,), {"Options": dict})
    assert driver_error(cls) == "Loose: `Options` must be a pydantic model"


def test_the_error_names_the_target_as_the_spec_does() -> None:
    assert driver_error(type("X", (Driver,), {}), "mypkg.ping:PingDriver").startswith("mypkg.ping:PingDriver: ")


def test_a_driver_error_is_a_type_error() -> None:
    assert issubclass(DriverError, TypeError)


# -- what check_driver finds --------------------------------------------------------------------------


def test_a_plain_class_with_start_send_and_stop_is_a_driver() -> None:
    shape = check_driver(Ping)
    assert (shape.cls, shape.send_is_coroutine, shape.has_batch, shape.options_model) == (Ping, True, False,
                                                                                          NoOptions)


def test_a_plain_def_send_is_accepted_and_known_as_such() -> None:
    def send(self: Any, op: Op) -> Result:
        return OK

    assert check_driver(type("Sync", (Ping,), {"send": send})).send_is_coroutine is False


def test_a_driver_with_only_send_batch_is_accepted() -> None:
    class Batch(Driver):
        def send_batch(self, ops: list[Op]) -> None:
            pass

    assert check_driver(Batch).has_batch is True


def test_a_driver_base_subclass_with_send_has_every_optional_hook() -> None:
    class Full(Driver):
        async def send(self, op: Op) -> Result | None:
            return OK

    shape = check_driver(Full)
    assert (shape.has_verify, shape.has_batch, shape.options_model) == (True, False, NoOptions)


def test_a_drivers_options_model_is_kept() -> None:
    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str

    assert check_driver(type("WithOptions", (Ping,), {"Options": Options})).options_model is Options


def test_services_needed_come_from_needs_or_needs_for() -> None:
    class Fixed(Ping):
        needs: ClassVar[tuple[str, ...]] = ("kafka",)

    class ByOptions(Driver):
        async def send(self, op: Op) -> Result | None:
            return OK

        @classmethod
        def needs_for(cls, options: dict[str, Any]) -> list[str]:
            return ["kafka", "postgres"] if options.get("ledger") else ["kafka"]

    assert check_driver(Fixed).needs({}) == {"kafka"}
    assert check_driver(Ping).needs({}) == set()
    assert check_driver(ByOptions).needs({"ledger": True}) == {"kafka", "postgres"}
    assert check_driver(ByOptions).needs({}) == {"kafka"}


async def test_a_driver_without_launch_launches_nothing() -> None:
    async with check_driver(Ping).launch({}, {}, "/tmp/run") as launched:
        assert launched == {}


async def test_the_driver_base_class_launches_nothing_and_verifies_nothing() -> None:
    class Full(Driver):
        async def send(self, op: Op) -> Result | None:
            return OK

    async with check_driver(Full).launch({"a": 1}, {}, "/tmp/run") as launched:
        assert launched == {}
    driver = Full()
    assert await driver.verify() == []
    assert Full.needs_for({}) == ()


# -- the example drivers ------------------------------------------------------------------------------


def test_the_readme_example_driver_shape_is_accepted() -> None:
    # TODO: run README.md's "Adding a target" example verbatim (issue 16) once README shows the new seam;
    # it still shows the old aiohttp example, so the README-shaped do-nothing driver stands in for it.
    shape = check_driver(NullDriver, "benchmarks.produce_driver:NullDriver")
    assert (shape.send_is_coroutine, shape.has_batch, shape.needs({})) == (True, False, set())


async def test_the_readme_example_driver_answers_ok() -> None:
    driver = NullDriver()
    await driver.start(None)
    assert await driver.send(Op(0, "op")) is OK
    await driver.stop()


# -- the seam's values --------------------------------------------------------------------------------


def test_an_op_carries_its_id_kind_payload_and_times() -> None:
    op = Op(42, "transfer", {"amount": 5}, intended_ns=1_000, sent_ns=1_250)
    assert (op.id, op.kind, op.payload, op.intended_ns, op.sent_ns) == (42, "transfer", {"amount": 5}, 1_000, 1_250)
    assert repr(op) == "Op(id=42, kind='transfer', intended_ns=1000)"
    with pytest.raises(AttributeError):
        op.extra = 1  # type: ignore[attr-defined]


def test_ok_is_a_result_without_error_completed_now() -> None:
    assert (OK.error, OK.completed_ns) == (None, None)
    assert Result(error="http_503").error == "http_503"


async def test_a_context_without_supervisor_runs_a_background_task_anyway() -> None:
    ran = asyncio.Event()

    async def job() -> None:
        ran.set()

    DriverContext(options={}, completions=None).background(job, "job")  # type: ignore[arg-type]
    await asyncio.wait_for(ran.wait(), 10)


def test_a_context_hands_background_tasks_to_its_supervisor() -> None:
    spawned: list[tuple[Callable[[], Coroutine[Any, Any, None]], str]] = []

    async def job() -> None:
        pass

    ctx = DriverContext(options={}, completions=None, supervise=lambda f, name: spawned.append((f, name)))  # type: ignore[arg-type]
    ctx.background(job, "outcome-reader")
    assert spawned == [(job, "outcome-reader")]


def test_a_context_defaults_to_one_process_and_a_30_second_timeout() -> None:
    ctx = DriverContext(options={"a": 1}, completions=None)  # type: ignore[arg-type]
    assert (ctx.process_index, ctx.process_count, ctx.services, ctx.timeout_s) == (0, 1, {}, 30.0)
