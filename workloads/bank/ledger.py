"""The shadow ledger: what the workload sent, what came back, and what the balances must be.

Money moves in the model only when an op is acknowledged as applied. Debits in flight are
reserved, so a withdrawal is never sized on money that might not be there when it is applied
(events of different types travel on different topics, so their order is not guaranteed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal("0.00")


@dataclass(slots=True)
class Account:
    id: str
    client_id: str
    balance: Decimal = ZERO  # confirmed (acknowledged applied)
    pending_debit: Decimal = ZERO
    pending_credit: Decimal = ZERO
    pending_ops: int = 0
    opened: bool = False
    closing: bool = False
    closed: bool = False

    @property
    def available(self) -> Decimal:
        """What can be debited whatever order the in-flight events are applied in."""
        return self.balance - self.pending_debit

    @property
    def ceiling(self) -> Decimal:
        """The most this account can hold once everything in flight is applied."""
        return self.balance + self.pending_credit


@dataclass(slots=True)
class Pending:
    """An op in flight: its expected status and its effect if applied."""

    expect: str
    event_id: str | None
    deltas: tuple[tuple[str, Decimal], ...] = ()
    opens: str | None = None
    closes: str | None = None
    payload: dict[str, object] | None = None  # the op's payload: the driver marks it "sent"


@dataclass
class Ledger:
    accounts: dict[str, Account] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    surprises: list[str] = field(default_factory=list)

    def add(self, token: str, p: Pending) -> None:
        """Record an op as sent: reserve its debits, count it against its accounts."""
        self.pending[token] = p
        for acc_id, delta in p.deltas:
            acc = self.accounts[acc_id]
            acc.pending_ops += 1
            if delta < 0:
                acc.pending_debit -= delta
            else:
                acc.pending_credit += delta
        for acc_id in (p.opens, p.closes):
            if acc_id is not None and acc_id in self.accounts:
                self.accounts[acc_id].pending_ops += 1

    def settle(self, token: str, applied: bool) -> Pending | None:
        """The op's outcome is known: release its reservations, apply its effect if `applied`."""
        p = self.pending.pop(token, None)
        if p is None:
            return None
        for acc_id, delta in p.deltas:
            acc = self.accounts[acc_id]
            acc.pending_ops -= 1
            if delta < 0:
                acc.pending_debit += delta
            else:
                acc.pending_credit -= delta
            if applied:
                acc.balance += delta
        for acc_id in (p.opens, p.closes):
            if acc_id is not None and acc_id in self.accounts:
                self.accounts[acc_id].pending_ops -= 1
        if applied and p.opens is not None:
            self.accounts[p.opens].opened = True
        if applied and p.closes is not None:
            self.accounts[p.closes].closed = True
        return p

    def expected_state(self) -> dict[str, tuple[Decimal, str]]:
        """Balance and status of every account whose opening was applied."""
        return {a.id: (a.balance, "FERME" if a.closed else "ACTIF") for a in self.accounts.values() if a.opened}
