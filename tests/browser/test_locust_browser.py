"""Locust's web UI in headless Chromium: the HDR (edabench) tab draws a live chart, then the final numbers.

`edabench locust SPEC --web` (a master and one worker hosting the generator, the echo target with
its stalls) serves Locust's UI; a test is started as the UI's form would, and runs until Stop.
Chromium (driven over the DevTools protocol) opens the HDR tab and stays on it: the chart's points
grow while the test runs, without a reload; after Locust's own Stop button is clicked the tab shows
the final numbers, equal to summary.json's, the gate's verdict and links to report.html, summary.md
and gate.xml. Every process is stopped by PID, also on failure.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.locust_run import EDABENCH, free_port, read, running, stop

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--remote-debugging-port=0", "--window-size=1400,1000"]
SPEC = """name = "browser-echo"
target = "echo"
duration_s = 30
warmup_s = 1
[rate]
rate = 50
[[ops]]
name = "echo"
[target_options]
base_ms = 20
stall_every_s = 3
stall_for_s = 0.5
[slo]
p99_ms = 1000
check_generator = false
"""
TAB = """(() => {
  const q = s => document.querySelector(s);
  const chart = q('#edabench-chart'), status = q('#edabench-status'), row = q('#edabench-table tr[data-name="echo"]');
  return {points: chart ? Number(chart.dataset.points) : 0, phase: status ? status.dataset.phase : null,
          lines: chart ? chart.querySelectorAll('g[data-series] polyline').length : 0,
          p99: row ? row.querySelector('[data-key="p99"]').textContent : null,
          count: row ? row.querySelector('[data-key="count"]').textContent : null,
          verdict: q('#edabench-verdict') ? q('#edabench-verdict').textContent : null,
          links: [...document.querySelectorAll('#edabench-links a')].map(a => a.textContent),
          where: location.href, text: document.body.innerText.slice(0, 300)};
})()"""
CLICK_STOP = """(() => {
  const stop = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === 'Stop');
  if (stop) stop.click();
  return Boolean(stop);
})()"""


class Page:
    """One browser tab over the DevTools protocol: evaluate an expression, take a screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        i = next(self.ids)
        await self.ws.send_json({"id": i, "method": method, "params": params})
        async with asyncio.timeout(30):
            while True:
                data = json.loads((await self.ws.receive()).data)
                if data.get("id") == i:
                    assert "error" not in data, data
                    return data["result"]

    async def value(self, expression: str) -> Any:
        """The expression's value; None while the page is between documents (navigation)."""
        return (await self.call("Runtime.evaluate", expression=expression, returnByValue=True))["result"].get("value")

    async def until(self, expression: str, check: Any, what: str, timeout_s: float = 90.0) -> Any:
        """Evaluate until `check(value)` holds (bounded: the test fails, saying what it waited for)."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = await self.value(expression)
            if value is not None and check(value):
                return value
            assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what}; last: {value}"
            await asyncio.sleep(0.25)


def _devtools_port(profile: Path, proc: subprocess.Popen[bytes]) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while not marker.exists() or not marker.read_text().strip():
        assert proc.poll() is None and time.monotonic() < deadline, "chromium did not open its DevTools port"
        time.sleep(0.1)
    return int(marker.read_text().split()[0])


def _wait_stats(base: str, check: Any, what: str, timeout_s: float = 90.0) -> None:
    """Until Locust's /stats/requests (what its UI polls; cached for a second or two) says so."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError, ValueError):
            if check(json.loads(urllib.request.urlopen(f"{base}/stats/requests", timeout=2).read())):
                return
        assert time.monotonic() < deadline, f"waited {timeout_s:.0f} s for {what} at {base}"
        time.sleep(0.2)


async def _watch(devtools: int, url: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], bytes]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools}/json/list") as resp:
            target = next(t for t in await resp.json() if t["type"] == "page")
        async with http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            await page.call("Page.enable")
            await page.call("Page.navigate", url=url)
            first = await page.until(TAB, lambda v: v["points"] >= 2 and v["lines"] > 0, "the chart's first points")
            later = await page.until(TAB, lambda v: v["points"] > first["points"], "the chart to update in place")
            await page.until(CLICK_STOP, bool, "Locust's Stop button")
            final = await page.until(TAB, lambda v: v["phase"] == "finished" and v["verdict"], "the final numbers")
            png = await page.call("Page.captureScreenshot", format="png")
            with contextlib.suppress(Exception):
                await page.call("Browser.close")
    return first, later, final, base64.b64decode(png["data"])


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (Debian package `chromium`)")
def test_hdr_tab_draws_a_live_chart_then_the_final_numbers(tmp_path: Path) -> None:
    spec = tmp_path / "browser-echo.toml"
    spec.write_text(SPEC)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [EDABENCH, "locust", str(spec), "--web", "--workers", "1", "--web-port", str(port), "--runs-dir",
               str(tmp_path / "runs"), "--no-gate"]
    with running(command, tmp_path / "edabench.log"):
        _wait_stats(base, lambda s: s.get("workers"), "the worker to connect")  # a test cannot start before
        form = urllib.parse.urlencode({"user_count": 1, "spawn_rate": 1, "host": ""}).encode()
        urllib.request.urlopen(f"{base}/swarm", data=form, timeout=10).read()  # as the UI's Start button
        # the UI opened on a stale "ready" shows its start form, not the tabs
        _wait_stats(base, lambda s: s.get("state") == "running", "the test to run")
        profile = tmp_path / "profile"
        assert CHROMIUM is not None
        browser = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            first, later, final, png = asyncio.run(_watch(_devtools_port(profile, browser),
                                                          f"{base}/?tab=edabench-hdr"))
            (tmp_path / "hdr-tab.png").write_bytes(png)  # to look at
        finally:
            stop(browser, wait_s=10)
        snap = json.loads(urllib.request.urlopen(f"{base}/edabench/hdr.json", timeout=10).read())
    summary = read(Path(snap["run_dir"]) / "summary.json")
    rt = summary["ops"]["echo"]["response_time_us"]
    assert first["phase"] == later["phase"] == "running" and later["points"] > first["points"]
    assert final["p99"] == f"{rt['p99'] / 1000:.3f}" and int(final["count"]) == rt["count"], (final, rt)
    assert final["verdict"].startswith("gate: PASS"), final
    assert {"report.html", "summary.md", "gate.xml"} <= set(final["links"])
    assert not summary["interrupted"], "a test run until Stop ends with its Stop"
    assert summary["overall"]["target_rate"] == pytest.approx(50, abs=1) and summary["measured_s"] > 0
