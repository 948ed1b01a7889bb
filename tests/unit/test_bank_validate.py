"""What the ledger can hold: a decoded event is checked against its columns before any write."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from targets.bank.validate import check

D = Decimal


def _open(**over: Any) -> dict[str, Any]:
    rec = {
        "event_id": "0b6f7c9e-5f1c-4c43-9d53-1c1c1c1c1c1c",
        "timestamp": 1_763_900_000_123,
        "compte_id": "C1",
        "client_id": "K1",
        "type_compte": "COURANT",
        "devise": "EUR",
        "solde_initial": D("10.00"),
        "metadata": None,
    }
    return {**rec, **over}


def _depot(**over: Any) -> dict[str, Any]:
    rec = {
        "event_id": "e1",
        "timestamp": 0,
        "compte_id": "C1",
        "montant": D("1.00"),
        "devise": "EUR",
        "reference": "DEP-1",
        "canal": "CARTE",
        "metadata": None,
    }
    return {**rec, **over}


def _virement(**over: Any) -> dict[str, Any]:
    rec = {
        "event_id": "e2",
        "timestamp": 0,
        "compte_source_id": "A",
        "compte_destination_id": "B",
        "montant": D("1.00"),
        "devise": "EUR",
        "motif": "",
        "reference": "VIR-1",
        "statut": "INITIE",
        "metadata": None,
    }
    return {**rec, **over}


def test_events_that_fit_the_ledger_pass() -> None:
    assert check("CompteOuvert", _open()) is None
    assert check("DepotEffectue", _depot(event_id="x" * 64, reference="r" * 100)) is None
    assert check("VirementEmis", _virement(montant=D("9999999999999999.99"))) is None
    assert (
        check("CompteFerme", {"event_id": "e", "timestamp": 0, "compte_id": "C1", "motif": "", "metadata": None})
        is None
    )


@pytest.mark.parametrize(
    ("name", "rec", "reason"),
    [
        ("DepotEffectue", _depot(event_id="e" * 65), "too_long:event_id"),
        ("DepotEffectue", _depot(compte_id="c" * 65), "too_long:compte_id"),
        ("CompteOuvert", _open(client_id="k" * 1_000_000), "too_long:client_id"),
        ("VirementEmis", _virement(compte_destination_id="d" * 65), "too_long:compte_destination_id"),
        ("DepotEffectue", _depot(reference="r" * 101), "too_long:reference"),
        ("CompteOuvert", _open(devise="EUROS"), "bad_currency:devise"),
        ("DepotEffectue", _depot(devise="eur"), "bad_currency:devise"),
        ("DepotEffectue", _depot(reference="DEP\x00-1"), "nul_char:reference"),
        ("CompteOuvert", _open(compte_id="C\x001"), "nul_char:compte_id"),
        ("VirementEmis", _virement(motif="\x00"), "nul_char:motif"),
        ("DepotEffectue", _depot(compte_id=""), "empty:compte_id"),
        ("DepotEffectue", _depot(compte_id="C\n1"), "control_char:compte_id"),
        ("DepotEffectue", _depot(montant=D("10000000000000000.00")), "out_of_range:montant"),
        ("CompteOuvert", _open(solde_initial=D("-10000000000000000.00")), "out_of_range:solde_initial"),
        ("RetraitEffectue", _depot(montant=D("NaN")), "not_a_number:montant"),
    ],
)
def test_a_field_the_ledger_cannot_hold_is_named_in_the_reason(name: str, rec: dict[str, Any], reason: str) -> None:
    bad = check(name, rec)
    assert bad is not None and bad.reason == reason


def test_the_detail_says_how_long_a_field_is_and_what_fits() -> None:
    bad = check("DepotEffectue", _depot(event_id="e" * 65))
    assert bad is not None and bad.detail == "event_id has 65 characters, the ledger holds 64"
