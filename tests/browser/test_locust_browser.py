"""Locust's web UI in headless Chromium: the HDR tab shows the run's own percentiles.

Starts `edabench locust echo --web --autostart` (master, one worker, the echo target) for a short
timed run, waits until the results are written, then has Chromium render Locust's single-page UI
on the HDR tab (and the plain /edabench/hdr page) and dumps the DOM. The numbers read from the
rendered tables must be those of summary.json. Every process is stopped by PID in `finally`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from harness.locust.procs import free_port

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
# no --remote-debugging-port: with an open DevTools endpoint, --dump-dom does not exit after the dump
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--virtual-time-budget=8000"]
RUN_TIMEOUT_S = 90.0


class Tables(HTMLParser):
    """Every table row as a list of cell texts (th and td), in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _stop_group(proc: subprocess.Popen[bytes], sig: int, wait_s: float) -> None:
    """Signal the process (and the group it leads, which only holds what it started), then wait."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(wait_s)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def _dump_dom(url: str, profile: Path) -> str:
    chromium = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = chromium.communicate(timeout=60)
        return out.decode()
    finally:
        _stop_group(chromium, signal.SIGTERM, 5)


def _get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_finished(base: str, coordinator: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert coordinator.poll() is None, f"edabench locust exited early; see {log}"
        with contextlib.suppress(OSError, ValueError):
            snap = _get_json(f"{base}/edabench/hdr.json")
            if snap["finished"]:
                return snap
        time.sleep(0.5)
    raise AssertionError(f"the run did not finish in {RUN_TIMEOUT_S} s; see {log}")


def _echo_row(rows: list[list[str]]) -> dict[str, str]:
    header = next(r for r in rows if "p99 (ms)" in r)
    row = next(r for r in rows if r and r[0] == "echo" and len(r) == len(header))
    return dict(zip(header, row, strict=True))


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium at /usr/bin/chromium "
                                                  "(Debian package `chromium`), which is not installed")
def test_hdr_tab_shows_the_runs_percentiles(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "edabench-locust.log"
    cmd = [sys.executable, "-c", "from harness.locust.cli import app; app()", "echo", "--web", "--autostart",
           "--web-port", str(port), "--workers", "1", "--users", "4", "-r", "100", "--run-time", "3s",
           "--warmup", "1", "--runs-dir", str(tmp_path / "runs"), "--no-report", "--no-gate"]
    with log.open("wb") as fh:
        coordinator = subprocess.Popen(cmd, stdout=fh, stderr=fh, start_new_session=True)
    try:
        snap = _wait_finished(base, coordinator, log)
        summary = json.loads((Path(snap["run_dir"]) / "summary.json").read_bytes())
        rt = summary["ops"]["echo"]["response_time_us"]

        ui = _echo_row(_parse(_dump_dom(f"{base}/?tab=edabench-hdr", tmp_path / "p1")))
        assert float(ui["p99 (ms)"]) == pytest.approx(rt["p99"] / 1000, abs=0.001), ui
        assert float(ui["p50 (ms)"]) == pytest.approx(rt["p50"] / 1000, abs=0.001), ui
        assert int(ui["# measured"]) == rt["count"]
        assert float(ui["Locust's p99 (ms)"]) == summary["locust"]["echo"]["p99_ms"]

        page = _echo_row(_parse(_dump_dom(f"{base}/edabench/hdr?refresh=0", tmp_path / "p2")))
        assert float(page["max (ms)"]) == pytest.approx(rt["max"] / 1000, abs=0.001), page
        assert float(page["p99.9 (ms)"]) == pytest.approx(rt["p99_9"] / 1000, abs=0.001), page
    finally:
        _stop_group(coordinator, signal.SIGINT, 40)


def _parse(dom: str) -> list[list[str]]:
    tables = Tables()
    tables.feed(dom)
    return tables.rows
