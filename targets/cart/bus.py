"""The command bus: routes a command to its handler; handlers return Results, never raise
for expected outcomes. The handler implements load -> decide -> append with optimistic
concurrency: with an expected version a mismatch is a 409; without one a lost race is
retried a bounded number of times against the fresh state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from targets.cart.catalogue import Product
from targets.cart.domain import Cart, Event
from targets.cart.result import Err, Ok, Problem, Result, conflict
from targets.cart.store import Appended, EventStore

Decide = Callable[[Cart, Any, dict[str, Product]], Result[Event, Problem]]
OnAppended = Callable[[Cart, Appended], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Accepted:
    cart: Cart  # state after the command
    event: Event
    retries: int
    view: bytes  # the read model after the command, as JSON


class Handler(Protocol):
    async def handle(self, command: Any) -> Result[Accepted, Problem]: ...


class CommandHandler:
    """Generic event-sourced handler; `decide` is the command's own rule."""

    def __init__(
        self,
        store: EventStore,
        catalogue: dict[str, Product],
        decide: Decide,
        on_appended: OnAppended | None = None,
        max_retries: int = 5,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.decide = decide
        self.on_appended = on_appended
        self.max_retries = max_retries
        self.conflicts = 0

    async def handle(self, command: Any) -> Result[Accepted, Problem]:
        expected: int | None = command.expected_version
        cart, stored = await self.store.load(command.cart_id, expected)
        for attempt in range(self.max_retries + 1):
            if expected is not None and cart.version != expected:
                return conflict(cart.version, expected)
            decided = self.decide(cart, command, self.catalogue)
            if isinstance(decided, Err):
                if not stored:  # refused on this process's copy: another process may have moved on
                    cart, stored = await self.store.load_stored(command.cart_id), True
                    continue
                return decided
            after = cart.copy()
            after.apply(decided.value)
            outcome = await self.store.append(after, decided.value)
            if isinstance(outcome, Appended):
                if self.on_appended is not None:
                    await self.on_appended(after, outcome)
                return Ok(Accepted(after, decided.value, attempt, outcome.view))
            self.conflicts += 1
            # the append handed back the stored cart (sync mode), or a racing writer won the version
            cart = outcome if outcome is not None else await self.store.load_stored(command.cart_id)
            stored = True
        return conflict(cart.version, expected)


class CommandBus:
    """Maps a command type to its handler (the seed's CommandBus.register/execute)."""

    def __init__(self) -> None:
        self._handlers: dict[type, Handler] = {}

    def register(self, command_type: type, handler: Handler) -> None:
        self._handlers[command_type] = handler

    def handlers(self) -> dict[type, Handler]:
        return dict(self._handlers)

    async def execute(self, command: Any) -> Result[Accepted, Problem]:
        handler = self._handlers.get(type(command))
        if handler is None:
            return Err(Problem(500, "no_handler", f"no handler for {type(command).__name__}"))
        return await handler.handle(command)
