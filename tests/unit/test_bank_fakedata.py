"""French fake data: valid IBAN and RIB keys, realistic amounts, same seed -> same data."""

from __future__ import annotations

from decimal import Decimal

from workloads.bank.fakedata import FakeData, iban_check_digits, iban_is_valid, rib_key


def test_known_iban_has_valid_check_digits() -> None:
    # the example IBAN published for France
    assert iban_check_digits("FR", "20041010050500013M02606") == "14"
    assert iban_is_valid("FR14 2004 1010 0505 0001 3M02 606")


def test_altered_iban_is_invalid() -> None:
    assert not iban_is_valid("FR15 2004 1010 0505 0001 3M02 606")
    assert not iban_is_valid("FR14 2004 1010 0505 0001 3M02 607")


def test_rib_key_of_a_known_rib() -> None:
    # 89*30002 + 15*00550 + 3*00000157841 = 3151081 ; 3151081 mod 97 = 72 ; key = 97 - 72
    assert rib_key("30002", "00550", "00000157841") == f"{97 - (89 * 30002 + 15 * 550 + 3 * 157841) % 97:02d}"


def test_generated_ibans_are_french_and_valid() -> None:
    fake = FakeData(7)
    for _ in range(500):
        iban = fake.iban()
        assert iban.startswith("FR") and len(iban) == 27
        assert iban_is_valid(iban)
        bban = iban[4:]
        assert bban[-2:] == rib_key(bban[:5], bban[5:10], bban[10:21])


def test_same_seed_gives_same_data() -> None:
    a, b = FakeData(42), FakeData(42)
    seq_a = [(a.iban(), a.titulaire(), a.montant(), a.reference(), a.uuid()) for _ in range(50)]
    seq_b = [(b.iban(), b.titulaire(), b.montant(), b.reference(), b.uuid()) for _ in range(50)]
    assert seq_a == seq_b
    c = FakeData(43)
    assert [c.iban() for _ in range(5)] != [s[0] for s in seq_a[:5]]


def test_amounts_are_cents_within_bounds_and_skewed() -> None:
    fake = FakeData(1)
    xs = [fake.montant(median=60, sigma=1.0, lo=1, hi=20000) for _ in range(5000)]
    assert all(Decimal(1) <= x <= Decimal(20000) for x in xs)
    assert all(x == x.quantize(Decimal("0.01")) for x in xs)
    xs.sort()
    median, mean = xs[len(xs) // 2], sum(xs) / len(xs)
    assert Decimal(45) < median < Decimal(80)  # log-normal: median near the parameter...
    assert mean > median  # ...and a long right tail


def test_uuids_are_version_4() -> None:
    fake = FakeData(3)
    u = fake.uuid()
    assert len(u) == 36 and u[14] == "4"
