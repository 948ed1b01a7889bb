"""The embedded schema registry answers as Confluent's does, and the REST client reads it."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from targets.kafka.registry import CONTENT_TYPE, RegistryClient, RegistryError, canonical, embedded_registry

ORDER = {"type": "record", "name": "Order", "fields": [{"name": "order_id", "type": "long"}]}
PAYMENT = {"type": "record", "name": "Payment", "fields": [{"name": "amount", "type": "double"}]}


@pytest_asyncio.fixture
async def registry() -> AsyncIterator[str]:
    async with embedded_registry() as url:
        yield url


@pytest_asyncio.fixture
async def client(registry: str) -> AsyncIterator[RegistryClient]:
    c = RegistryClient(registry)
    try:
        yield c
    finally:
        await c.close()


async def get_json(url: str) -> tuple[int, str, object]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.content_type, await resp.json(content_type=None)


async def test_registering_the_same_schema_twice_gives_one_id(client: RegistryClient) -> None:
    first = await client.register("orders-value", json.dumps(ORDER))
    assert await client.register("orders-value", json.dumps(ORDER, indent=2)) == first


async def test_a_schema_is_fetched_back_by_its_id(client: RegistryClient) -> None:
    sid = await client.register("orders-value", json.dumps(ORDER))
    assert json.loads(await client.get(sid) or "") == ORDER


async def test_ids_are_global_across_subjects_as_in_confluent(client: RegistryClient) -> None:
    a = await client.register("orders-value", json.dumps(ORDER))
    b = await client.register("archive-value", json.dumps(ORDER))
    c = await client.register("payments-value", json.dumps(PAYMENT))
    assert a == b != c


async def test_an_unknown_id_is_none(client: RegistryClient) -> None:
    assert await client.get(999) is None


async def test_an_invalid_schema_is_refused_with_confluents_error_code(client: RegistryClient) -> None:
    with pytest.raises(RegistryError, match=r"HTTP 422 \(error 42201: Invalid schema"):
        await client.register("orders-value", json.dumps({"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "nope"}]}))


async def test_subjects_and_versions_are_listed(client: RegistryClient, registry: str) -> None:
    await client.register("orders-value", json.dumps(ORDER))
    sid = await client.register("orders-value", json.dumps({**ORDER, "doc": "v2"}))
    assert (await get_json(f"{registry}/subjects"))[2] == ["orders-value"]
    assert (await get_json(f"{registry}/subjects/orders-value/versions"))[2] == [1, 2]
    status, content_type, latest = await get_json(f"{registry}/subjects/orders-value/versions/latest")
    assert (status, content_type) == (200, CONTENT_TYPE)
    assert latest == {"subject": "orders-value", "version": 2, "id": sid, "schema": canonical({**ORDER, "doc": "v2"})}


async def test_an_unknown_subject_is_a_404_with_confluents_error_code(registry: str) -> None:
    status, _, body = await get_json(f"{registry}/subjects/nope/versions")
    assert status == 404 and body["error_code"] == 40401  # type: ignore[index]


async def test_an_unreachable_registry_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = RegistryClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(ConnectionError, match=f"cannot reach the schema registry at http://127.0.0.1:{port}"):
            await c.register("orders-value", json.dumps(ORDER))
    finally:
        await c.close()


def test_credentials_in_the_url_become_basic_auth_and_leave_the_url() -> None:
    c = RegistryClient("https://key:s%40cret@registry.example:8081/")
    assert c.url == "https://registry.example:8081"
    assert c.headers == {"Authorization": "Basic " + base64.b64encode(b"key:s@cret").decode()}
