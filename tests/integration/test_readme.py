"""README's promises that code can keep: its example driver runs as written, its spec snippets parse."""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.engine.runner import RunOptions, execute
from harness.loop import run
from harness.plan import make_plan
from harness.spec import parse_spec

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _driver_source() -> str:
    block = re.search(r"<!-- readme-driver -->\s*```python\n(.*?)```\s*<!-- /readme-driver -->", README, re.S)
    assert block, "README has lost its example driver"
    return block.group(1)


@pytest.fixture
def ping_server() -> Iterator[str]:
    """A plain asyncio HTTP server answering 200 on /ping and 404 elsewhere, in a thread of its own."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                body, status = (b"pong", b"200 OK") if path == b"/ping" else (b"no", b"404 Not Found")
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    stop = asyncio.Event()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        async with server:
            await stop.wait()

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{holder['port']}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def test_the_readme_example_driver_runs_as_written(tmp_path: Path, ping_server: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "readme_ping.py").write_text(_driver_source(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "readme_ping", raising=False)
    spec = parse_spec({"name": "readme-ping", "target": "readme_ping:PingDriver", "duration_s": 2,
                       "rate": {"rate": 100}, "target_options": {"url": ping_server}})
    outcome = run(execute(make_plan(spec), RunOptions(runs_root=tmp_path / "runs")))
    counts = outcome.summary["overall"]["counts"]
    assert counts["ok"] == counts["scheduled"] == 200
    assert outcome.ok


def test_the_readme_http_spec_snippet_is_the_shipped_workload() -> None:
    import tomllib

    block = re.search(r'```toml\n(name = "http-url".*?)```', README, re.S)
    assert block, "README has lost its http-url spec"
    shown = tomllib.loads(block.group(1))
    shipped = tomllib.loads((REPO / "workloads" / "http-url.toml").read_text(encoding="utf-8"))
    make_plan(parse_spec(shown, "README"))
    assert {k: v for k, v in shipped.items() if k != "description"} == shown
