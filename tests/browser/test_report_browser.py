"""The reports in a real browser: they load without console errors and every chart draws.

Drives headless Chromium (one per module, 1,400 px wide) over the DevTools protocol (a websocket
from aiohttp): loads a single-run report, one of eight kinds, a comparison and a history from
disk; reads console messages and exceptions; counts charts whose SVG has drawn series, the
panels of the small multiples, text that falls outside its chart, and table widths; checks that
every SVG reference resolves; saves a screenshot of each page next to it. Skipped when Chromium
is not installed (Debian: `apt-get install chromium`).
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
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from report_fixtures import RunShape, make_run

from reports.build import build_report

pytestmark = pytest.mark.browser
LATER = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--remote-debugging-port=0",
         "--window-size=1400,900"]

CHARTS_JS = """(() => {
  const figs = [...document.querySelectorAll('figure.chart')];
  const drawnFigs = figs.filter(f => {
    const svg = f.querySelector('svg');
    if (!svg) return false;
    const box = svg.getBoundingClientRect();
    const series = [...svg.querySelectorAll('g[id*="-series-"] path')].filter(p => p.getTotalLength() > 0);
    return box.width > 100 && box.height > 50 && series.length > 0;
  });
  const refs = [...document.querySelectorAll('svg use')]
    .map(u => u.getAttribute('xlink:href') || u.getAttribute('href'));
  const missing = refs.filter(r => !document.getElementById(r.slice(1)));
  // text drawn outside its chart's canvas is clipped: an axis label, a tick, a legend entry
  const clipped = [];
  for (const f of figs) {
    const svg = f.querySelector('svg');
    if (!svg) continue;
    const box = svg.getBoundingClientRect();
    for (const g of svg.querySelectorAll('g[id*="text_"], g[id*="legend_"]')) {
      const r = g.getBoundingClientRect();
      if (r.width === 0 && r.height === 0) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        clipped.push(f.dataset.chart + ': ' + g.id);
    }
  }
  const tables = [...document.querySelectorAll('table')].map(t => ({
    cls: t.className, width: Math.ceil(t.getBoundingClientRect().right), scroll: t.scrollWidth,
    client: t.clientWidth}));
  const panels = {};
  for (const f of drawnFigs) panels[f.dataset.chart] = f.querySelectorAll('svg g[id*="axes_"]').length;
  return {figures: figs.length, drawn: drawnFigs.length, captions: drawnFigs.map(f => f.dataset.chart),
          panels, uses: refs.length, missing: missing.length, clipped, tables,
          pageWidth: document.documentElement.scrollWidth, scripts: document.scripts.length,
          title: document.title};
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


KINDS = ("add_item", "remove_item", "update_quantity", "checkout", "get_cart", "apply_coupon",
         "list_products", "get_order")


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A report of eight kinds, a comparison of two runs of nine kinds, and a history of six runs."""
    root = tmp_path_factory.mktemp("runs")
    run = make_run(root, RunShape(kinds=KINDS[:2], name="browser <check>", resources_lead_s=6.0))
    many = make_run(root / "many", RunShape(kinds=KINDS, name="cart-2k", rate=40, duration_s=40))
    nine = (*KINDS, "inventory_reservation_release")
    base = make_run(root / "cmp", RunShape(kinds=nine, name="cart-2k-with-a-long-workload-name", rate=20,
                                           duration_s=20))
    cand = make_run(root / "cmp", RunShape(kinds=nine, name="cart-2k-with-a-long-workload-name", rate=20,
                                           duration_s=20, scale_us=1.3, seed=5, started_at=LATER))
    for day in range(6):
        make_run(root / "history", RunShape(duration_s=2, warmup_s=0, stall_every_s=0, scale_us=1 + day / 10,
                                            seed=day, started_at=LATER + timedelta(days=day), git_sha=f"sha{day}"))
    return {"report": build_report([run]), "many": build_report([many]),
            "compare": build_report([base, cand], root / "compare.html"),
            "history": build_report([], history_dir=root / "history")}


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One headless Chromium for the module; yields its DevTools port."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed (Debian package `chromium`)")
    user_data = tmp_path_factory.mktemp("profile")
    proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={user_data}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = None
    try:
        port = _port(user_data, proc)
        yield port
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


@pytest.fixture(scope="module")
def seen(browser: int, pages: dict[str, Path]) -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every page loaded once: its chart and table state and its error events; screenshots beside it."""
    out = {}
    for name, path in pages.items():
        state, errors, png = asyncio.run(_inspect(browser, path.resolve().as_uri()))
        (path.parent / f"{name}.png").write_bytes(png)
        assert len(png) > 20_000, f"{name}: blank screenshot"
        out[name] = (state, errors)
    return out


@pytest.mark.parametrize("page", ["report", "many", "compare", "history"])
def test_page_loads_without_console_errors_or_scripts(seen: dict[str, Any], page: str) -> None:
    state, errors = seen[page]
    assert errors == []
    assert state["scripts"] == 0


@pytest.mark.parametrize("page", ["report", "many", "compare", "history"])
def test_every_chart_is_drawn_and_every_svg_reference_resolves(seen: dict[str, Any], page: str) -> None:
    state, _ = seen[page]
    assert state["figures"] >= 2
    assert state["drawn"] == state["figures"]
    assert state["uses"] > 0 and state["missing"] == 0


@pytest.mark.parametrize("page", ["report", "many", "compare", "history"])
def test_no_chart_text_is_clipped_by_its_canvas(seen: dict[str, Any], page: str) -> None:
    assert seen[page][0]["clipped"] == []


def test_single_run_report_draws_all_its_charts(seen: dict[str, Any]) -> None:
    state, _ = seen["report"]
    assert state["title"] == "edabench report: browser <check>"
    assert state["figures"] >= 15


@pytest.mark.parametrize("caption", [
    "Response time distribution (all kinds): samples per latency bucket",
    "Response time distribution: add_item",
    "Response time distribution: get_order",
])
def test_distribution_histograms_render(seen: dict[str, Any], caption: str) -> None:
    assert caption in seen["many"][0]["captions"]


def test_per_kind_latency_renders_as_one_panel_per_kind(seen: dict[str, Any]) -> None:
    panels = seen["many"][0]["panels"]
    assert panels["Response time over time per kind: p99 and max per interval"] == len(KINDS)


def test_compare_page_fits_1400_px_without_scrolling_a_table(seen: dict[str, Any]) -> None:
    state, _ = seen["compare"]
    assert state["pageWidth"] <= 1400
    assert {t["cls"] for t in state["tables"]} >= {"runs", "deltas"}
    for t in state["tables"]:
        assert t["width"] <= 1400, t
        assert t["scroll"] <= t["client"] + 1, t  # no horizontal scroll bar inside the table

