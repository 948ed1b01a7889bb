"""Avro in the Confluent wire format: header bytes, decimal amounts, and decode failures."""

from __future__ import annotations

from decimal import Decimal

import pytest

from targets.bank.avro import DecodeError, Decoder, Encoder
from targets.bank.topics import EVENT_TOPICS, SCHEMA_FILES, Names


class MemoryRegistry:
    def __init__(self) -> None:
        self.by_id: dict[int, str] = {}
        self.ids: dict[tuple[str, str], int] = {}
        self.gets = 0

    async def register(self, subject: str, schema: str) -> int:
        key = (subject, schema)
        if key not in self.ids:
            self.ids[key] = 100 + len(self.ids)
            self.by_id[self.ids[key]] = schema
        return self.ids[key]

    async def get(self, schema_id: int) -> str | None:
        self.gets += 1
        return self.by_id.get(schema_id)

    async def close(self) -> None:
        return None


DEPOT = {
    "event_id": "0b6f7c9e-5f1c-4c43-9d53-1c1c1c1c1c1c",
    "timestamp": 1_763_900_000_123,
    "compte_id": "C1",
    "montant": Decimal("1234.56"),
    "devise": "EUR",
    "reference": "DEP-ABC",
    "canal": "CARTE",
    "metadata": {"iban": "FR1420041010050500013M02606"},
}


async def _codec() -> tuple[Encoder, Decoder, MemoryRegistry]:
    reg = MemoryRegistry()
    enc = Encoder(reg)
    await enc.register_all()
    return enc, Decoder(reg), reg


async def test_every_event_schema_registers_once() -> None:
    enc, _, reg = await _codec()
    again = await enc.register_all()
    assert len(reg.by_id) == len(SCHEMA_FILES)
    assert sorted(again) == sorted(SCHEMA_FILES)


async def test_wire_header_is_magic_zero_then_big_endian_schema_id() -> None:
    enc, _, reg = await _codec()
    data = enc.encode("DepotEffectue", DEPOT)
    sid = next(i for (subject, _), i in reg.ids.items() if subject == "bancaire.depot.effectue-value")
    assert data[0] == 0
    assert data[1:5] == sid.to_bytes(4, "big")


async def test_round_trip_keeps_decimal_amount_and_timestamp() -> None:
    enc, dec, _ = await _codec()
    data = enc.encode("DepotEffectue", DEPOT)
    await dec.resolve(dec.unknown_ids([data]))
    name, rec = dec.decode(data)
    assert name == "DepotEffectue"
    assert rec["montant"] == Decimal("1234.56") and isinstance(rec["montant"], Decimal)
    assert rec["metadata"] == DEPOT["metadata"]
    assert int(rec["timestamp"].timestamp() * 1000) == DEPOT["timestamp"]


async def test_amount_with_more_than_two_decimals_is_refused() -> None:
    enc, _, _ = await _codec()
    with pytest.raises(ValueError):
        enc.encode("DepotEffectue", {**DEPOT, "montant": Decimal("1.005")})


async def test_decoder_asks_the_registry_once_per_id() -> None:
    enc, dec, reg = await _codec()
    data = [enc.encode("DepotEffectue", DEPOT) for _ in range(10)]
    await dec.resolve(dec.unknown_ids(data))
    for d in data:
        dec.decode(d)
    assert reg.gets == 1
    assert dec.unknown_ids(data) == set()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "null_value"),
        (b"\x00\x00", "truncated"),
        (b"\x7f\x00\x00\x00\x64junk", "bad_magic"),
        (b"\x00\x7f\xff\xff\xf0junk", "unknown_schema_id"),
    ],
)
async def test_bad_records_fail_with_a_reason(raw: bytes | None, reason: str) -> None:
    _, dec, _ = await _codec()
    await dec.resolve(dec.unknown_ids([raw]))
    with pytest.raises(DecodeError) as exc:
        dec.decode(raw)
    assert exc.value.reason == reason


async def test_garbage_body_under_a_known_id_is_undecodable() -> None:
    enc, dec, _ = await _codec()
    good = enc.encode("DepotEffectue", DEPOT)
    await dec.resolve(dec.unknown_ids([good]))
    with pytest.raises(DecodeError) as exc:
        dec.decode(good[:5] + b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
    assert exc.value.reason == "undecodable"


async def test_a_namespaced_encoder_registers_under_its_topics_subjects_and_the_service_decodes_it() -> None:
    reg = MemoryRegistry()
    enc = Encoder(reg, Names("run-1"))
    await enc.register_all()
    assert {subject for subject, _ in reg.ids} == {f"run-1.{t}-value" for t in EVENT_TOPICS.values()}
    dec = Decoder(reg)
    data = enc.encode("DepotEffectue", DEPOT)
    await dec.resolve(dec.unknown_ids([data]))
    name, rec = dec.decode(data)
    assert (name, rec["event_id"], rec["montant"]) == ("DepotEffectue", DEPOT["event_id"], DEPOT["montant"])
