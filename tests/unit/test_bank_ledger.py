"""Ledger arithmetic: the service's rules and the workload's shadow ledger."""

from __future__ import annotations

from decimal import Decimal

from targets.bank.rules import (
    ACCOUNT_CLOSED,
    ACCOUNT_EXISTS,
    INSUFFICIENT_FUNDS,
    INVALID_AMOUNT,
    SAME_ACCOUNT,
    UNKNOWN_ACCOUNT,
    Account,
    Effects,
    apply_event,
)
from workloads.bank.ledger import Account as ShadowAccount
from workloads.bank.ledger import Ledger, Pending

D = Decimal


def _acc(i: str, solde: str, statut: str = "ACTIF") -> Account:
    return Account(i, "K1", "COURANT", "EUR", D(solde), statut)


def _vir(src: str, dst: str, montant: str, eid: str = "e1") -> dict[str, object]:
    return {
        "event_id": eid,
        "timestamp": 0,
        "compte_source_id": src,
        "compte_destination_id": dst,
        "montant": D(montant),
        "reference": "VIR-1",
    }


def test_transfer_moves_money_and_writes_two_rows() -> None:
    accounts = {"A": _acc("A", "100.00"), "B": _acc("B", "5.00")}
    fx = Effects()
    assert apply_event("VirementEmis", _vir("A", "B", "40.10"), accounts, fx) is None
    assert accounts["A"].solde == D("59.90") and accounts["B"].solde == D("45.10")
    assert [t[2] for t in fx.transactions] == ["VIREMENT_SORTANT", "VIREMENT_ENTRANT"]
    assert set(fx.changed) == {"A", "B"}


def test_transfer_over_the_balance_is_rejected_without_effect() -> None:
    accounts = {"A": _acc("A", "10.00"), "B": _acc("B", "0.00")}
    fx = Effects()
    assert apply_event("VirementEmis", _vir("A", "B", "10.01"), accounts, fx) == INSUFFICIENT_FUNDS
    assert accounts["A"].solde == D("10.00") and accounts["B"].solde == D("0.00")
    assert not fx.transactions and not fx.changed


def test_events_on_unknown_or_closed_accounts_are_rejected() -> None:
    accounts = {"A": _acc("A", "10.00", "FERME")}
    dep = {"event_id": "e", "timestamp": 0, "compte_id": "A", "montant": D("1.00"), "reference": "r"}
    assert apply_event("DepotEffectue", dep, accounts, Effects()) == ACCOUNT_CLOSED
    assert apply_event("DepotEffectue", {**dep, "compte_id": "Z"}, accounts, Effects()) == UNKNOWN_ACCOUNT


def test_open_then_deposit_in_one_batch_inserts_the_final_balance() -> None:
    accounts: dict[str, Account] = {}
    fx = Effects()
    ouvert = {
        "event_id": "o",
        "timestamp": 0,
        "compte_id": "N",
        "client_id": "K",
        "type_compte": "EPARGNE",
        "devise": "EUR",
        "solde_initial": D("10.00"),
    }
    assert apply_event("CompteOuvert", ouvert, accounts, fx) is None
    dep = {"event_id": "d", "timestamp": 0, "compte_id": "N", "montant": D("2.50"), "reference": "r"}
    assert apply_event("DepotEffectue", dep, accounts, fx) is None
    assert [a.solde for a in fx.new_accounts] == [D("12.50")]
    assert not fx.changed  # a new row is inserted with its final state, never updated
    assert apply_event("CompteOuvert", {**ouvert, "event_id": "o2"}, accounts, fx) == ACCOUNT_EXISTS


def test_shadow_ledger_reserves_debits_until_settled() -> None:
    led = Ledger()
    led.accounts["A"] = ShadowAccount("A", "K", balance=D("100.00"), opened=True)
    led.add("t1", Pending("applied", "t1", (("A", D("-30.00")),)))
    led.add("t2", Pending("applied", "t2", (("A", D("20.00")),)))
    a = led.accounts["A"]
    assert a.available == D("70.00")  # the in-flight deposit is not counted on
    assert a.ceiling == D("120.00")
    led.settle("t2", applied=True)
    led.settle("t1", applied=False)  # e.g. rejected: the reservation is released, no effect
    assert (a.balance, a.available, a.pending_ops) == (D("120.00"), D("120.00"), 0)


def test_shadow_ledger_open_and_close() -> None:
    led = Ledger()
    led.accounts["N"] = ShadowAccount("N", "K")
    led.add("o", Pending("applied", "o", (("N", D("50.00")),), opens="N"))
    assert led.expected_state() == {}
    led.settle("o", applied=True)
    led.add("c", Pending("applied", "c", closes="N"))
    led.settle("c", applied=True)
    assert led.expected_state() == {"N": (D("50.00"), "FERME")}


def test_non_positive_amounts_and_self_transfers_are_rejected() -> None:
    accounts = {"A": _acc("A", "10.00"), "B": _acc("B", "0.00")}
    dep = {"event_id": "e", "timestamp": 0, "compte_id": "A", "montant": D("0.00"), "reference": "r"}
    assert apply_event("DepotEffectue", dep, accounts, Effects()) == INVALID_AMOUNT
    assert apply_event("VirementEmis", _vir("A", "A", "1.00"), accounts, Effects()) == SAME_ACCOUNT
    assert accounts["A"].solde == D("10.00")


def test_a_credit_past_what_numeric_18_2_holds_is_rejected_without_effect() -> None:
    from targets.bank.rules import BALANCE_OVERFLOW

    accounts = {"A": _acc("A", "9999999999999999.00"), "B": _acc("B", "9999999999999999.00")}
    dep = {"event_id": "e", "timestamp": 0, "compte_id": "A", "montant": D("1.00"), "reference": "r"}
    fx = Effects()
    assert apply_event("DepotEffectue", dep, accounts, fx) == BALANCE_OVERFLOW
    assert apply_event("VirementEmis", _vir("A", "B", "1.00"), accounts, fx) == BALANCE_OVERFLOW
    assert accounts["A"].solde == D("9999999999999999.00") and not fx.transactions
