"""The bank workload: what it generates, how it follows outcomes, and what verify() reports."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from harness.protocol import Op
from workloads.bank.generator import BankWorkload


def _ack_all(w: BankWorkload, ops: list[Op]) -> None:
    for op in ops:
        w.on_result(op, None)


def _ops(w: BankWorkload, kind: str, n: int) -> list[Op]:
    out = []
    for i in range(n):
        k, payload = w.next_op(kind)
        out.append(Op(f"op{i}-{k}", k, payload))
    return out


def test_money_ops_wait_for_an_acknowledged_account() -> None:
    w = BankWorkload({"run_tag": "t"}, seed=1, process_index=0)
    first = _ops(w, "deposit", 5)
    assert {op.kind for op in first} == {"open"}  # nothing acknowledged yet
    _ack_all(w, first)
    assert {op.kind for op in _ops(w, "deposit", 5)} == {"deposit"}


def test_account_ids_carry_the_process_index() -> None:
    a = BankWorkload({"run_tag": "t"}, seed=1, process_index=0)
    b = BankWorkload({"run_tag": "t"}, seed=1, process_index=1)
    ida = a.next_op("open")[1]["key"]
    idb = b.next_op("open")[1]["key"]
    assert ida != idb and ida.startswith("t-0-") and idb.startswith("t-1-")


def test_same_seed_same_events() -> None:
    def fields(seed: int) -> list[Any]:
        w = BankWorkload({"run_tag": "t"}, seed=seed, process_index=0)
        ops = _ops(w, "open", 20)
        _ack_all(w, ops)
        ops += _ops(w, "transfer", 20)
        return [{k: v for k, v in op.payload["fields"].items() if k != "timestamp"} for op in ops]

    assert fields(5) == fields(5)
    assert fields(5) != fields(6)


def test_withdrawals_never_exceed_what_is_surely_there() -> None:
    w = BankWorkload({"run_tag": "t"}, seed=2, process_index=0)
    opens = _ops(w, "open", 10)
    _ack_all(w, opens)
    for _ in range(300):  # nothing acknowledged: reservations pile up, balances must never go negative
        w.next_op("withdrawal")
    for acc in w.ledger.accounts.values():
        assert acc.available >= 0


def test_bad_event_shares_expect_their_outcome() -> None:
    w = BankWorkload(
        {"run_tag": "t", "overdraft_share": 0.5, "unknown_account_share": 0.25, "corrupt_share": 0.25},
        seed=3,
        process_index=0,
    )
    _ack_all(w, _ops(w, "open", 3))  # the shares draw first: some of these are bad ones already
    kinds = {op.kind: op.payload["expect"] for op in _ops(w, "deposit", 200)}
    assert kinds == {"overdraft": "rejected", "unknown_account": "rejected", "corrupt": "dlq"}


def test_overdraft_is_larger_than_any_possible_balance() -> None:
    w = BankWorkload({"run_tag": "t"}, seed=4, process_index=0)
    _ack_all(w, _ops(w, "open", 3))
    _ops(w, "deposit", 10)  # in flight: they raise the ceiling
    _kind, p = w._overdraft()  # type: ignore[misc]
    acc = w.ledger.accounts[p["key"]]
    assert p["fields"]["montant"] > acc.balance + acc.pending_credit


class _FakeDriver:
    def __init__(self, w: BankWorkload, sent: int, statuses: dict[str, int]) -> None:
        self.w, self.sent, self.statuses = w, sent, statuses
        self.db: dict[str, tuple[Decimal, str]] = {}

    def tallies(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "statuses": self.statuses,
            "in_flight": 0,
            "produce_failed": 0,
            "surprises": {},
            "late": 0,
        }

    async def accounts(self, prefix: str) -> dict[str, tuple[Decimal, str]]:
        return self.db

    async def event_statuses(self, ids: list[str]) -> dict[str, str]:
        return {}


async def test_verify_is_clean_when_db_matches_and_books_balance() -> None:
    w = BankWorkload({"run_tag": "t"}, seed=5, process_index=0)
    ops = _ops(w, "open", 4)
    _ack_all(w, ops)
    d = _FakeDriver(w, sent=4, statuses={"applied": 4})
    d.db = dict(w.ledger.expected_state())
    assert await w.verify(d) == []


async def test_verify_reports_a_wrong_balance() -> None:
    w = BankWorkload({"run_tag": "t"}, seed=5, process_index=0)
    _ack_all(w, _ops(w, "open", 2))
    d = _FakeDriver(w, sent=2, statuses={"applied": 2})
    d.db = dict(w.ledger.expected_state())
    first = sorted(d.db)[0]
    d.db[first] = (d.db[first][0] + Decimal("0.01"), "ACTIF")
    problems = await w.verify(d)
    assert any(first in p for p in problems)


async def test_an_unheard_event_the_ledger_applied_is_reported_as_not_heard_not_lost() -> None:
    w = BankWorkload({"run_tag": "t", "verify_settle_s": 0}, seed=5, process_index=0)
    ops = _ops(w, "open", 3)
    for op in ops:
        op.payload["sent"] = True
    _ack_all(w, ops[:2])
    d = _FakeDriver(w, sent=3, statuses={"applied": 2})
    unheard = ops[2].payload["fields"]["event_id"]

    async def applied(ids: list[str]) -> dict[str, str]:
        return {i: "applied" for i in ids if i == unheard}

    d.event_statuses = applied  # type: ignore[method-assign]
    expected = dict(w.ledger.expected_state())
    d.db = expected
    problems = await w.verify(d)
    assert any("1 of 3 events sent got no outcome" in p and "1 of them are in the ledger" in p
               and "0 are not (lost)" in p for p in problems), problems
    assert not any(p.endswith("(lost)") and not p.startswith("1 of 3") for p in problems)


async def test_an_event_absent_from_the_ledger_is_reported_lost() -> None:
    w = BankWorkload({"run_tag": "t", "verify_settle_s": 0}, seed=5, process_index=0)
    ops = _ops(w, "open", 3)
    for op in ops:
        op.payload["sent"] = True
    _ack_all(w, ops[:2])
    d = _FakeDriver(w, sent=3, statuses={"applied": 2})
    d.db = dict(w.ledger.expected_state())
    problems = await w.verify(d)
    assert any("1 events sent but absent from the ledger's processed events (lost)" in p for p in problems)


async def test_verify_ignores_ops_that_were_never_sent() -> None:
    w = BankWorkload({"run_tag": "t", "verify_settle_s": 0}, seed=5, process_index=0)
    ops = _ops(w, "open", 3)
    _ack_all(w, ops[:2])
    # the third was generated but never sent (e.g. the in-flight cap): no outcome, not "lost"
    d = _FakeDriver(w, sent=2, statuses={"applied": 2})
    d.db = dict(w.ledger.expected_state())
    assert await w.verify(d) == []


async def test_verify_reports_a_sent_op_missing_from_the_ledger() -> None:
    w = BankWorkload({"run_tag": "t", "verify_settle_s": 0}, seed=5, process_index=0)
    ops = _ops(w, "open", 2)
    _ack_all(w, ops[:1])
    ops[1].payload["sent"] = True  # sent, but its outcome never came and the ledger has no trace
    d = _FakeDriver(w, sent=2, statuses={"applied": 1})
    d.db = dict(w.ledger.expected_state())
    problems = await w.verify(d)
    assert any("lost" in p for p in problems)
