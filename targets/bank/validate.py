"""Check a decoded event against the ledger's columns before any write, without I/O.

Why: valid Avro can still break a column (an `event_id` over VARCHAR(64), a NUL that PostgreSQL
text refuses, an amount past NUMERIC(18,2)). Refusing such a record here gives it a precise reason
in the DLQ and keeps it out of the batch transaction, where it would fail the whole batch.
The limits are those of `db.DDL`; `Invalid.reason` is short and bounded (it labels a metric).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: column widths of the ledger (db.DDL)
ID_MAX = 64
REFERENCE_MAX = 100
#: NUMERIC(18,2): 16 digits before the point
AMOUNT_LIMIT = Decimal(10) ** 16
_CURRENCY = re.compile(r"[A-Z]{3}")
#: C0/C1 control characters: allowed nowhere in an id (NUL is refused by PostgreSQL in any text)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_IDS: dict[str, tuple[str, ...]] = {
    "CompteOuvert": ("event_id", "compte_id", "client_id"),
    "CompteFerme": ("event_id", "compte_id"),
    "DepotEffectue": ("event_id", "compte_id"),
    "RetraitEffectue": ("event_id", "compte_id"),
    "VirementEmis": ("event_id", "compte_source_id", "compte_destination_id"),
}
_AMOUNT: dict[str, str] = {
    "CompteOuvert": "solde_initial",
    "DepotEffectue": "montant",
    "RetraitEffectue": "montant",
    "VirementEmis": "montant",
}


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a record cannot be written: `reason` is "<kind>:<field>", `detail` says by how much."""

    reason: str
    detail: str


def _text(field: str, value: Any, limit: int | None, is_id: bool) -> Invalid | None:
    if not isinstance(value, str):
        return Invalid(f"not_text:{field}", f"{field} is a {type(value).__name__}")
    if "\x00" in value:
        return Invalid(f"nul_char:{field}", f"{field} holds a NUL character at {value.index(chr(0))}")
    if is_id and not value:
        return Invalid(f"empty:{field}", f"{field} is empty")
    if limit is not None and len(value) > limit:
        return Invalid(f"too_long:{field}", f"{field} has {len(value)} characters, the ledger holds {limit}")
    if is_id and (m := _CONTROL.search(value)):
        return Invalid(f"control_char:{field}", f"{field} holds U+{ord(m.group()):04X} at {m.start()}")
    return None


def check(name: str, rec: dict[str, Any]) -> Invalid | None:
    """None when every field of event `name` fits the ledger; else the first field that does not."""
    for f in _IDS.get(name, ("event_id",)):
        if bad := _text(f, rec.get(f), ID_MAX, is_id=True):
            return bad
    if "reference" in rec and (bad := _text("reference", rec["reference"], REFERENCE_MAX, is_id=False)):
        return bad
    for f in ("motif", "devise"):  # not stored today, but a NUL is never data
        if f in rec and (bad := _text(f, rec[f], None, is_id=False)):
            return bad
    if "devise" in rec and not _CURRENCY.fullmatch(rec["devise"]):
        return Invalid("bad_currency:devise", f"devise {rec['devise'][:16]!r} is not 3 letters A-Z (ISO 4217)")
    if (f := _AMOUNT.get(name)) is not None:
        amount = rec.get(f)
        if not isinstance(amount, Decimal) or not amount.is_finite():
            return Invalid(f"not_a_number:{f}", f"{f} is {str(amount)[:32]}")
        if abs(amount) >= AMOUNT_LIMIT:
            digits = len(amount.as_tuple().digits)
            return Invalid(f"out_of_range:{f}", f"{f} has {digits} digits; NUMERIC(18,2) holds 16 before the point")
    return None
