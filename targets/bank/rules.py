"""The ledger's business rules, free of I/O: given the locked accounts and a batch of events in
order, decide each event's fate and the rows to write. Kept pure so it is unit-tested directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
ACTIF, FERME = "ACTIF", "FERME"

# rejection reasons (short, stable: they become error kinds in reports)
UNKNOWN_ACCOUNT = "unknown_account"
ACCOUNT_CLOSED = "account_closed"
ACCOUNT_EXISTS = "account_exists"
INSUFFICIENT_FUNDS = "insufficient_funds"
INVALID_AMOUNT = "invalid_amount"
SAME_ACCOUNT = "same_account"
#: a credit that would take a balance past NUMERIC(18,2): the ledger cannot hold it
BALANCE_OVERFLOW = "balance_overflow"
BALANCE_LIMIT = Decimal(10) ** 16


@dataclass(slots=True)
class Account:
    id: str
    client_id: str
    type_compte: str
    devise: str
    solde: Decimal
    statut: str
    is_new: bool = False  # opened in this batch: INSERT rather than UPDATE
    dirty: bool = False


@dataclass(slots=True)
class Effects:
    """What a batch writes: accounts to insert/update, transaction rows, rejections."""

    new_accounts: list[Account] = field(default_factory=list)
    changed: dict[str, Account] = field(default_factory=dict)
    # (id, compte_id, type, montant, reference, event_id, timestamp_ms)
    transactions: list[tuple[str, str, str, Decimal, str, str, int]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (event_id, reason)


def accounts_touched(name: str, rec: dict[str, Any]) -> tuple[str, ...]:
    if name == "VirementEmis":
        return (rec["compte_source_id"], rec["compte_destination_id"])
    return (rec["compte_id"],)


def _ts(rec: dict[str, Any]) -> int:
    t = rec["timestamp"]
    return t if isinstance(t, int) else int(t.timestamp() * 1000)


def _usable(acc: Account | None) -> str | None:
    if acc is None:
        return UNKNOWN_ACCOUNT
    if acc.statut != ACTIF:
        return ACCOUNT_CLOSED
    return None


def apply_event(name: str, rec: dict[str, Any], accounts: dict[str, Account], fx: Effects) -> str | None:
    """Apply one event to `accounts`, appending its rows to `fx`. Returns a rejection reason or None."""
    eid = rec["event_id"]
    if name == "CompteOuvert":
        cid = rec["compte_id"]
        if cid in accounts:
            return ACCOUNT_EXISTS
        solde = rec["solde_initial"]
        if solde < 0:
            return INVALID_AMOUNT
        acc = Account(cid, rec["client_id"], rec["type_compte"], rec["devise"], solde, ACTIF, is_new=True)
        accounts[cid] = acc
        fx.new_accounts.append(acc)
        if solde > 0:
            fx.transactions.append((eid, cid, "DEPOT", solde, "SOLDE_INITIAL", eid, _ts(rec)))
        return None
    if name == "CompteFerme":
        acc = accounts.get(rec["compte_id"])
        bad = _usable(acc)
        if bad:
            return bad
        acc.statut = FERME  # type: ignore[union-attr]
        _touch(acc, fx)  # type: ignore[arg-type]
        return None
    montant: Decimal = rec["montant"]
    if montant <= 0:
        return INVALID_AMOUNT
    if name == "DepotEffectue" or name == "RetraitEffectue":
        acc = accounts.get(rec["compte_id"])
        bad = _usable(acc)
        if bad:
            return bad
        assert acc is not None
        if name == "RetraitEffectue":
            if acc.solde < montant:
                return INSUFFICIENT_FUNDS
            acc.solde -= montant
            kind = "RETRAIT"
        else:
            if acc.solde + montant >= BALANCE_LIMIT:
                return BALANCE_OVERFLOW
            acc.solde += montant
            kind = "DEPOT"
        _touch(acc, fx)
        fx.transactions.append((eid, acc.id, kind, montant, rec["reference"], eid, _ts(rec)))
        return None
    if name == "VirementEmis":
        src_id, dst_id = rec["compte_source_id"], rec["compte_destination_id"]
        if src_id == dst_id:
            return SAME_ACCOUNT
        src, dst = accounts.get(src_id), accounts.get(dst_id)
        bad = _usable(src) or _usable(dst)
        if bad:
            return bad
        assert src is not None and dst is not None
        if src.solde < montant:
            return INSUFFICIENT_FUNDS
        if dst.solde + montant >= BALANCE_LIMIT:
            return BALANCE_OVERFLOW
        src.solde -= montant
        dst.solde += montant
        _touch(src, fx)
        _touch(dst, fx)
        ts = _ts(rec)
        fx.transactions.append((f"{eid}/D", src_id, "VIREMENT_SORTANT", montant, rec["reference"], eid, ts))
        fx.transactions.append((f"{eid}/C", dst_id, "VIREMENT_ENTRANT", montant, rec["reference"], eid, ts))
        return None
    return "unknown_event"


def _touch(acc: Account, fx: Effects) -> None:
    if not acc.is_new:
        fx.changed[acc.id] = acc
