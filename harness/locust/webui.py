"""The "HDR (edabench)" tab in Locust's web UI, and the same view as a page and as JSON.

Locust's single-page UI renders an extended tab's body as a table only, and stops polling when a
test stops, so the tab's content is drawn by a small inline script added to Locust's index page:
it fetches `/edabench/hdr.json` every second, whatever Locust's own state, and shows its `html`
(a chart of each second's percentiles, the per-kind table, the gate's verdict and links to the
run's report.html, summary.md and gate.xml). After Stop it shows the final numbers, from
summary.json, as soon as they are written. Everything is rendered here from the master's own
results and escaped; nothing is fetched from elsewhere.
"""

from __future__ import annotations

import html
from typing import Any

from harness.locust import chart
from harness.locust.coordinator import Coordinator, TestRun

TAB_KEY = "edabench-hdr"
FILES = ("report.html", "summary.md", "gate.xml", "summary.json", "run.json")
NOTE = ("The load is the spec's arrival schedule, sent by a generator hosted on each worker that runs a "
        "ScheduledOps user, through the target's own driver; the number of users does not shape it. "
        "Response times are from each op's intended start (exact HDR percentiles per second); Locust's "
        "own tables and charts are fed from the same histograms.")
COLUMNS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("p99_9", "p99.9"), ("max", "max"))

SCRIPT = """<script>
(() => {
  const KEY = "edabench-hdr";
  const base = location.pathname.replace(/\\/$/, "");
  let box = null, last = "";
  const active = () => new URLSearchParams(location.search).get("tab") === KEY;
  function mount() {
    if (!active()) { if (box) { box.remove(); box = null; last = ""; } return false; }
    if (box && document.body.contains(box)) return true;
    const tabs = document.querySelector('[role="tablist"]');
    if (!tabs) return false;
    const bar = (tabs.closest(".MuiTabs-root") || tabs).parentElement;
    box = document.createElement("div");
    box.id = "edabench-tab";
    box.style.padding = "16px";
    bar.after(box);
    last = "";
    return true;
  }
  async function refresh() {
    if (!mount()) return;
    try {
      const data = await (await fetch(base + "/edabench/hdr.json", {cache: "no-store"})).json();
      if (box && data.html !== last) { box.innerHTML = data.html; last = data.html; }
    } catch (e) { /* the master is restarting or gone: try again */ }
  }
  new MutationObserver(() => { if (active() && !(box && document.body.contains(box))) refresh(); })
    .observe(document.body, {childList: true, subtree: true});
  setInterval(refresh, 1000);
  refresh();
})();
</script>"""


def _ms(us: Any) -> str:
    return "" if us is None else f"{us / 1000:.3f}"


def _locust_p99(env: Any, method: str, name: str) -> str:
    entry = env.stats.entries.get((name, method))
    if entry is None or entry.num_requests - entry.num_none_requests <= 0:
        return ""
    return f"{entry.get_response_time_percentile(0.99):g}"


def _table(env: Any, run: TestRun) -> str:
    head = "".join(f"<th>{t} (ms)</th>" for _, t in COLUMNS)
    body = []
    for row in run.rows():
        resp, svc = row["response"], row["service"]
        counts = row.get("counts")
        failed = "" if counts is None else str(counts["error"] + counts["timeout"] + counts["not_sent"])
        cells = [f'<td data-key="name">{html.escape(row["name"])}</td>',
                 f'<td data-key="count">{resp.get("count", 0)}</td>',
                 *(f'<td data-key="{k}">{_ms(resp.get(k))}</td>' for k, _ in COLUMNS),
                 f'<td data-key="service_p99">{_ms(svc.get("p99"))}</td>',
                 f'<td data-key="failed">{failed}</td>',
                 f'<td data-key="locust_p99">{_locust_p99(env, run.spec.target, row["name"])}</td>']
        body.append(f'<tr data-name="{html.escape(row["name"])}">{"".join(cells)}</tr>')
    return ("<style>#edabench-table th,#edabench-table td{padding:3px 10px;text-align:right}"
            "#edabench-table th:first-child,#edabench-table td:first-child{text-align:left}</style>"
            '<table id="edabench-table" style="border-collapse:collapse">'
            f"<thead><tr><th>op</th><th># measured</th>{head}<th>p99 from send (ms)</th><th>failed</th>"
            f"<th>Locust's p99 (ms)</th></tr></thead><tbody>{''.join(body)}</tbody></table>")


def _phase(run: TestRun) -> str:
    if run.finished.is_set():
        return "finished"
    if run.stop_requested:
        return "stopping"
    return "running" if run.collector is not None else "starting"


def _status(run: TestRun, phase: str) -> str:
    c = run.collector
    seconds = 0 if c is None else c.last_t + 1
    live = {} if c is None else c.live
    text = (f"run {run.run_id}: {phase}, {seconds} s of the schedule, {len(run.hosts)} generator(s); "
            f"ok {live.get('ok', 0)}, errors {live.get('error', 0)}, timeouts {live.get('timeout', 0)}, "
            f"not sent {live.get('not_sent', 0)}")
    if run.summary is not None:
        s = run.summary
        overall = s.get("overall") or {}
        text = (f"run {run.run_id}: finished; {s['measured_s']} s measured, achieved "
                f"{overall.get('achieved_rate', 0):g}/s of {overall.get('target_rate', 0):g}/s; books balanced: "
                f"{s['books_balanced']}" + ("; INTERRUPTED" if s.get("interrupted") else ""))
    return f'<p id="edabench-status" data-phase="{phase}">{html.escape(text)}</p>'


def _verdict(run: TestRun) -> str:
    v = run.verdict
    if v is None:
        return ""
    failed = [f"{c['op']} {c['check']}" for c in v["checks"] if not c["passed"]]
    text = "PASS" if v["passed"] else f"FAIL (exit code {v['exit_code']}: {', '.join(failed)})"
    return f'<p id="edabench-verdict" data-passed="{str(v["passed"]).lower()}">gate: {html.escape(text)}</p>'


def _links(run: TestRun) -> str:
    links = [f'<a href="./edabench/files/{html.escape(run.run_id)}/{name}" target="_blank">{name}</a>'
             for name in FILES if (run.run_dir / name).exists()]
    return f'<p id="edabench-links">{" | ".join(links)}</p>' if links else ""


def fragment(env: Any, co: Coordinator) -> str:
    """The tab's content: status, chart, table, verdict, links (escaped, self-contained)."""
    run = co.current
    note = f'<p style="max-width:900px;opacity:0.8">{html.escape(NOTE)}</p>'
    if run is None:
        return f'<section id="edabench-hdr" data-phase="idle">{note}<p id="edabench-status" data-phase="idle">' \
               "no test yet: start one (one user per worker is enough)</p></section>"
    phase = _phase(run)
    problems = "".join(f'<p class="problem" style="color:#d62728">{html.escape(p)}</p>' for p in run.problems)
    return (f'<section id="edabench-hdr" data-phase="{phase}" data-run="{html.escape(run.run_id)}">{note}'
            f"{_status(run, phase)}{problems}<figure style='margin:8px 0'>"
            f"{chart.render(run.series, run.spec.warmup_s)}</figure>{_table(env, run)}{_verdict(run)}"
            f"{_links(run)}</section>")


def snapshot(env: Any, co: Coordinator) -> dict[str, Any]:
    run = co.current
    return {
        "state": getattr(env.runner, "state", None),
        "run_id": run.run_id if run is not None else None,
        "run_dir": str(run.run_dir) if run is not None else None,
        "phase": _phase(run) if run is not None else "idle",
        "finished": bool(run is not None and run.finished.is_set()),
        "points": len(run.series) if run is not None else 0,
        "html": fragment(env, co),
    }


PAGE_SCRIPT = """<script>
setInterval(async () => {
  try {
    const data = await (await fetch("hdr.json", {cache: "no-store"})).json();
    const box = document.getElementById("edabench-tab");
    if (box.innerHTML !== data.html) box.innerHTML = data.html;
  } catch (e) { /* the master is gone or restarting: try again */ }
}, 1000);
</script>"""


def page(env: Any, co: Coordinator, refresh: bool) -> str:
    """The same view as a page of its own (`/edabench/hdr`), refreshed by the same JSON."""
    return ("<!doctype html><html><head><meta charset='utf-8'><title>edabench HDR</title></head>"
            "<body style='font-family:sans-serif'><h1>HDR latency (edabench)</h1>"
            f"<div id='edabench-tab'>{fragment(env, co)}</div>{PAGE_SCRIPT if refresh else ''}</body></html>")


def install(env: Any, co: Coordinator) -> None:
    """Add the tab, its routes and its script to the web UI of `env` (the master's)."""
    web_ui = env.web_ui
    if web_ui is None:
        return
    from flask import Response, abort, jsonify, request, send_file

    app = web_ui.app

    @app.route("/edabench/hdr.json")
    def hdr_json() -> Any:
        return jsonify(snapshot(env, co))

    @app.route("/edabench/hdr")
    def hdr_page() -> Any:
        return Response(page(env, co, request.args.get("refresh", "1") != "0"), mimetype="text/html")

    @app.route("/edabench/files/<run_id>/<name>")
    def run_file(run_id: str, name: str) -> Any:
        run_dir = co.runs.get(run_id)
        if run_dir is None or name not in FILES or not (run_dir / name).exists():
            abort(404)
        return send_file(run_dir / name, mimetype="text/plain" if not name.endswith(".html") else "text/html")

    @app.after_request
    def add_script(response: Any) -> Any:
        """Locust's index page gets the tab's script (its own bundle draws only tables)."""
        if response.status_code == 200 and request.endpoint == "locust.index":
            response.direct_passthrough = False
            body = response.get_data(as_text=True)
            if "</body>" in body and "edabench-tab" not in body:
                response.set_data(body.replace("</body>", SCRIPT + "</body>", 1))
        return response

    web_ui.template_args["extended_tabs"] = [{"title": "HDR (edabench)", "key": TAB_KEY}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./edabench/hdr.json", "title": "Download HDR percentiles (edabench, JSON)"}]
