"""The report in a real browser: it loads without console errors and every chart draws.

Drives headless Chromium over the DevTools protocol (a websocket from aiohttp): loads the
page from disk, reads console messages and exceptions, counts charts whose SVG has drawn
series, checks that every SVG reference resolves, and saves a screenshot next to the test's
files. Skipped when Chromium is not installed (Debian: `apt-get install chromium`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from report_fixtures import RunShape, make_run

from reports.build import build_report

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1200,900"]

CHARTS_JS = """(() => {
  const figs = [...document.querySelectorAll('figure.chart')];
  const drawn = figs.filter(f => {
    const svg = f.querySelector('svg');
    if (!svg) return false;
    const box = svg.getBoundingClientRect();
    const series = [...svg.querySelectorAll('g[id*="-series-"] path')].filter(p => p.getTotalLength() > 0);
    return box.width > 100 && box.height > 50 && series.length > 0;
  });
  const refs = [...document.querySelectorAll('svg use')]
    .map(u => u.getAttribute('xlink:href') || u.getAttribute('href'));
  const missing = refs.filter(r => !document.getElementById(r.slice(1)));
  return {figures: figs.length, drawn: drawn.length, uses: refs.length, missing: missing.length,
          scripts: document.scripts.length, title: document.title};
})()"""


class DevTools:
    """Minimal DevTools protocol client: commands by id, events collected as they arrive."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[i] = fut
        await self.ws.send_json({"id": i, "method": method, "params": params})
        reply = await asyncio.wait_for(fut, 30)
        assert "error" not in reply, reply
        return reply["result"]

    async def wait_event(self, method: str) -> dict[str, Any]:
        while True:
            for e in self.events:
                if e.get("method") == method:
                    return e
            await asyncio.sleep(0.05)


def _port(user_data: Path, proc: subprocess.Popen[bytes]) -> int:
    """Chromium picks a free port for --remote-debugging-port=0 and writes it here."""
    marker = user_data / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text().strip():
        assert proc.poll() is None, "chromium exited at start"
        assert time.monotonic() < deadline, "chromium did not open its DevTools port"
        time.sleep(0.1)
    return int(marker.read_text().split()[0])


async def _inspect(port: int, url: str) -> tuple[dict[str, Any], list[dict[str, Any]], bytes]:
    """Load `url` in the open tab; return the chart state, error events and a full-page PNG."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json()
        page = next(t for t in targets if t["type"] == "page")
        async with http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            cdp = DevTools(ws)
            for domain in ("Page", "Runtime", "Log"):
                await cdp.call(f"{domain}.enable")
            await cdp.call("Page.navigate", url=url)
            async with asyncio.timeout(30):
                await cdp.wait_event("Page.loadEventFired")
            result = await cdp.call("Runtime.evaluate", expression=CHARTS_JS, returnByValue=True)
            shot = await cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            errors = [e for e in cdp.events
                      if e.get("method") == "Runtime.exceptionThrown"
                      or (e.get("method") == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")
                      or (e.get("method") == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
            cdp.reader.cancel()
    return result["result"]["value"], errors, base64.b64decode(shot["data"])


async def _close_browser(port: int) -> None:
    """Ask Chromium to shut down cleanly, so it reaps its own helper processes."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/json/version") as resp:
            url = (await resp.json())["webSocketDebuggerUrl"]
        async with http.ws_connect(url) as ws:
            await ws.send_json({"id": 1, "method": "Browser.close"})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await ws.receive()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    run = make_run(root, RunShape(kinds=("deposit", "withdraw"), name="browser <check>"))
    return build_report([run])


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package `chromium`)")
def test_report_renders_every_chart_without_console_errors(report: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    user_data = tmp_path / "profile"
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={user_data}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = None
    try:
        port = _port(user_data, proc)
        state, errors, png = asyncio.run(_inspect(port, report.resolve().as_uri()))
    finally:
        if port is not None:
            with contextlib.suppress(Exception):
                asyncio.run(_close_browser(port))
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(user_data, ignore_errors=True)
    (tmp_path / "report.png").write_bytes(png)
    assert errors == []
    assert state["title"] == "edabench report: browser <check>"
    assert state["scripts"] == 0
    assert state["figures"] >= 12
    assert state["drawn"] == state["figures"]
    assert state["uses"] > 0 and state["missing"] == 0
    assert len(png) > 50_000
