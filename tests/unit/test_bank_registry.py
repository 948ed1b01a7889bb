"""The Confluent REST registry client, against a minimal in-process registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio
from aiohttp import web

from targets.bank.avro import Decoder, Encoder
from targets.bank.registry import ConfluentRegistry, make_registry


def _app() -> web.Application:
    schemas: dict[int, str] = {}
    ids: dict[tuple[str, str], int] = {}

    async def register(request: web.Request) -> web.Response:
        body = await request.json()
        key = (request.match_info["subject"], body["schema"])
        if key not in ids:
            ids[key] = len(ids) + 1
            schemas[ids[key]] = body["schema"]
        return web.json_response({"id": ids[key]})

    async def get(request: web.Request) -> web.Response:
        sid = int(request.match_info["id"])
        if sid not in schemas:
            return web.json_response({"error_code": 40403, "message": "Schema not found"}, status=404)
        return web.json_response({"schema": schemas[sid]})

    app = web.Application()
    app.router.add_post("/subjects/{subject}/versions", register)
    app.router.add_get("/schemas/ids/{id}", get)
    return app


@pytest_asyncio.fixture
async def registry_url() -> AsyncIterator[str]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_register_is_idempotent_and_get_returns_the_schema(registry_url: str) -> None:
    reg = ConfluentRegistry(registry_url)
    try:
        a = await reg.register("t-value", '{"type":"string"}')
        assert await reg.register("t-value", '{"type":"string"}') == a
        assert await reg.get(a) == '{"type":"string"}'
        assert await reg.get(999) is None
    finally:
        await reg.close()


async def test_events_round_trip_through_the_rest_registry(registry_url: str) -> None:
    reg = make_registry(pool=None, url=registry_url)  # type: ignore[arg-type]
    try:
        enc = Encoder(reg)
        await enc.register_all()
        data = enc.encode(
            "RetraitEffectue",
            {
                "event_id": "e1",
                "timestamp": 0,
                "compte_id": "C1",
                "montant": Decimal("0.01"),
                "devise": "EUR",
                "reference": "R",
                "canal": "GUICHET",
                "metadata": None,
            },
        )
        dec = Decoder(reg)
        await dec.resolve(dec.unknown_ids([data]))
        name, rec = dec.decode(data)
        assert (name, rec["montant"]) == ("RetraitEffectue", Decimal("0.01"))
    finally:
        await reg.close()


def test_environment_selects_the_rest_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDABENCH_SCHEMA_REGISTRY_URL", "http://registry.invalid:8081")
    assert isinstance(make_registry(pool=None), ConfluentRegistry)  # type: ignore[arg-type]
