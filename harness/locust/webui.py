"""The HDR tab in Locust's web UI, and a plain page and JSON of the same numbers.

Locust's own table shows response times from the actual send, rounded; this tab shows
the HDR percentiles of the same requests, measured from the intended time for open-model
users, next to Locust's p99 so the difference is in plain view. The tab uses Locust's
extension points: `extended_tabs` / `extended_tables` template arguments, and an
`extended_stats` entry added to the /stats/requests answer the UI polls every 2 s.
"""

from __future__ import annotations

import html
import json
from typing import Any

from harness.locust.runtime import STATE
from harness.locust.sink import locust_stats

TAB_KEY = "edabench-hdr"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "Name"),
    ("count", "# measured"),
    ("p50_ms", "p50 (ms)"),
    ("p90_ms", "p90 (ms)"),
    ("p99_ms", "p99 (ms)"),
    ("p99_9_ms", "p99.9 (ms)"),
    ("max_ms", "max (ms)"),
    ("service_p99_ms", "p99 from send (ms)"),
    ("locust_p99_ms", "Locust's p99 (ms)"),
)


def _ms(block: dict[str, Any], key: str) -> float | None:
    value = block.get(key)
    return None if value is None else round(value / 1000, 3)


def rows(env: Any) -> list[dict[str, Any]]:
    """One row per request name (response time from the intended time), then extra latencies."""
    sink = STATE.sink
    if sink is None:
        return []
    live = sink.live()
    theirs = locust_stats(env)
    out = []
    for kind, hists in live["kinds"].items():
        resp, svc = hists["response"], hists["service"]
        row = {"name": kind, "count": resp.get("count", 0)}
        for key in ("p50", "p90", "p99", "p99_9", "max"):
            row[f"{key}_ms"] = _ms(resp, key)
        row["service_p99_ms"] = _ms(svc, "p99")
        row["locust_p99_ms"] = theirs.get(kind, {}).get("p99_ms")
        out.append(row)
    for metric, block in live["observed"].items():
        row = {"name": f"{metric} (pipeline)", "count": block.get("count", 0)}
        for key in ("p50", "p90", "p99", "p99_9", "max"):
            row[f"{key}_ms"] = _ms(block, key)
        row["service_p99_ms"] = None
        row["locust_p99_ms"] = None
        out.append(row)
    return out


def snapshot(env: Any) -> dict[str, Any]:
    sink = STATE.sink
    runner = env.runner
    return {
        "state": getattr(runner, "state", None),
        "finished": bool(sink is not None and sink.finalized),
        "run_dir": str(sink.run_dir) if sink is not None else None,
        "counts": sink.live()["counts"] if sink is not None else {},
        "rows": rows(env),
    }


def render_page(snap: dict[str, Any], refresh: bool = True) -> str:
    """A self-contained page (no script), refreshed every 2 s (unless not), for a person or a DOM dump."""
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title in COLUMNS)
    body = []
    for row in snap["rows"]:
        cells = "".join(
            f'<td data-key="{key}">{"" if row.get(key) is None else html.escape(str(row[key]))}</td>'
            for key, _ in COLUMNS
        )
        body.append(f'<tr data-name="{html.escape(row["name"])}">{cells}</tr>')
    counts = ", ".join(f"{k} {v}" for k, v in snap["counts"].items())
    meta = "<meta http-equiv='refresh' content='2'>" if refresh else ""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{meta}"
        "<title>edabench HDR</title><style>body{font-family:sans-serif}td,th{padding:2px 8px;"
        "text-align:right}td:first-child{text-align:left}</style></head><body>"
        "<h1>HDR latency (edabench)</h1>"
        f"<p id='state' data-state='{html.escape(str(snap['state']))}' "
        f"data-finished='{str(snap['finished']).lower()}'>state: {html.escape(str(snap['state']))}"
        f"{' (results written)' if snap['finished'] else ''}</p>"
        f"<p id='run-dir'>{html.escape(snap['run_dir'] or '')}</p><p id='counts'>{html.escape(counts)}</p>"
        "<p>Response time from the intended start for open-model users (from the send for others), "
        "exact HDR percentiles; the last column is Locust's own p99 for the same requests.</p>"
        f"<table id='hdr'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        "</body></html>"
    )


def install(env: Any) -> None:
    """Add the routes and the tab to the web UI of `env` (the master's, or the only process's)."""
    web_ui = env.web_ui
    if web_ui is None:
        return
    from flask import Response, jsonify, request

    app = web_ui.app

    @app.route("/edabench/hdr.json")
    def hdr_json() -> Any:
        return jsonify(snapshot(env))

    @app.route("/edabench/hdr")
    def hdr_page() -> Any:
        refresh = request.args.get("refresh", "1") != "0"
        return Response(render_page(snapshot(env), refresh), mimetype="text/html")

    @app.after_request
    def add_extended_stats(response: Any) -> Any:
        if not request.path.endswith("/stats/requests") or response.status_code != 200:
            return response
        data = response.get_json(silent=True)
        if not isinstance(data, dict):
            return response
        data["extended_stats"] = [{"key": TAB_KEY, "data": rows(env)}]
        response.set_data(json.dumps(data))
        return response

    web_ui.template_args["extended_tabs"] = [{"title": "HDR (edabench)", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./edabench/hdr.json", "title": "Download HDR percentiles (edabench, JSON)"}
    ]
