"""The Grafana dashboard queries only metrics that the harness and the targets really export.

The harness's (edabench_) queries are checked against a real scrape of `edabench run --metrics-port`,
saved by tests/integration/test_prometheus.py (which also checks the saved scrape still has the shape
of a live one, and runs every one of these queries on a real Prometheus): each series exists with the
labels the query selects and groups by, `rate()` reads counters and histogram buckets only, and
`histogram_quantile` reads buckets grouped by `le`. The targets' queries are checked against the
names their metrics modules declare.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "edabench.json"
SCRAPE = ROOT / "tests" / "unit" / "edabench_metrics.prom"  # a real scrape of `edabench run --metrics-port`
EXPORTERS = {
    "bancaire_": ROOT / "targets" / "bank" / "metrics.py",
    "cart_": ROOT / "targets" / "cart" / "metrics.py",
}
METRIC = re.compile(r"\b((?:edabench|bancaire|cart)_[a-z_]+)")
SUFFIXES = ("_bucket", "_total", "_sum", "_count")
SERIES = re.compile(r"\b(edabench_[a-z_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RATE = re.compile(r"\b(?:rate|irate|increase)\(\s*(edabench_[a-z_]+)")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _declared(prefix: str) -> str:
    return EXPORTERS[prefix].read_text()


@pytest.fixture(scope="module")
def scraped() -> dict[str, tuple[str, set[str]]]:
    """Sample name -> (its family's type, its label names), from the saved scrape."""
    out: dict[str, tuple[str, set[str]]] = {}
    for fam in text_string_to_metric_families(SCRAPE.read_text()):
        for s in fam.samples:
            out.setdefault(s.name, (fam.type, set()))[1].update(s.labels)
    return out


def harness_query_problems(expr: str, scraped: dict[str, tuple[str, set[str]]]) -> list[str]:
    """What in one PromQL expression does not resolve against a scrape of the harness's /metrics."""
    problems = []
    labels: set[str] = set()
    for name, matchers in SERIES.findall(expr):
        if name not in scraped:
            problems.append(f"{name}: no such series")
            continue
        typ, have = scraped[name]
        labels |= have
        problems += [f"{name}: no label {label!r}" for label in MATCHER.findall(matchers) if label not in have]
    for group in GROUPING.findall(expr):
        problems += [f"by ({group}): no series has {label!r}"
                     for label in (x.strip() for x in group.split(",")) if label and label not in labels]
    for name in RATE.findall(expr):
        typ = scraped.get(name, ("?", set()))[0]
        if typ not in ("counter", "histogram"):
            problems.append(f"rate over {name}, a {typ}")
    if "histogram_quantile" in expr and not ("_bucket" in expr and re.search(r"\bby\s*\([^)]*\ble\b", expr)):
        problems.append("histogram_quantile needs _bucket series summed by (le, ...)")
    return problems


def test_the_saved_scrape_is_the_harness_metrics(scraped: dict[str, tuple[str, set[str]]]) -> None:
    assert scraped["edabench_ops_total"] == ("counter", {"kind", "outcome"})
    assert scraped["edabench_response_time_seconds_bucket"] == ("histogram", {"kind", "le"})
    assert scraped["edabench_schedule_lag_seconds_bucket"] == ("histogram", {"le"})
    assert scraped["edabench_in_flight"][0] == scraped["edabench_target_rate"][0] == "gauge"


def test_every_harness_query_resolves_against_a_real_scrape(
        dashboard: dict[str, Any], scraped: dict[str, tuple[str, set[str]]]) -> None:
    problems = {expr: found for expr in _queries(dashboard)
                if "edabench_" in expr and (found := harness_query_problems(expr, scraped))}
    assert problems == {}


@pytest.mark.parametrize(("expr", "problem"), [
    ('max(edabench_response_time_seconds{quantile="0.99"})', "edabench_response_time_seconds: no such series"),
    ('sum(rate(edabench_ops_total{phase="x"}[1m]))', "edabench_ops_total: no label 'phase'"),
    ("sum by (route) (rate(edabench_ops_total[1m]))", "by (route): no series has 'route'"),
    ("rate(edabench_in_flight[1m])", "rate over edabench_in_flight, a gauge"),
    ("histogram_quantile(0.99, rate(edabench_response_time_seconds_bucket[1m]))",
     "histogram_quantile needs _bucket series summed by (le, ...)"),
])
def test_the_check_catches_what_a_stale_dashboard_gets_wrong(
        expr: str, problem: str, scraped: dict[str, tuple[str, set[str]]]) -> None:
    assert problem in harness_query_problems(expr, scraped)


def test_every_target_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    unknown = set()
    for expr in _queries(dashboard):
        for name in METRIC.findall(expr):
            if name.startswith("edabench_"):
                continue  # checked against the real scrape above
            prefix = next(p for p in EXPORTERS if name.startswith(p))
            source = _declared(prefix)
            base = name
            for suffix in SUFFIXES:
                base = base.removesuffix(suffix)
            if f'"{name}"' not in source and f'"{base}"' not in source:
                unknown.add(name)
    assert unknown == set()


def test_each_exporter_has_panels(dashboard: dict[str, Any]) -> None:
    text = " ".join(_queries(dashboard))
    for prefix in ("edabench_", *EXPORTERS):
        assert prefix in text


def test_panels_use_the_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_are_unique_and_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, p["title"]
        cells |= mine


def test_latency_panels_never_average_percentiles(dashboard: dict[str, Any]) -> None:
    for expr in _queries(dashboard):
        if "edabench_response_time_seconds" in expr:
            assert "avg" not in expr and "_over_time" not in expr


def test_harness_latency_panels_read_histograms_by_kind_and_overall(dashboard: dict[str, Any]) -> None:
    latency = [e for e in _queries(dashboard) if "_seconds_bucket" in e and "edabench_" in e]
    assert {(q, "kind" in e) for e in latency if "response_time" in e for q in ("0.5", "0.99") if f"({q}," in e} == {
        ("0.5", True), ("0.99", True), ("0.99", False)}
    assert any("edabench_schedule_lag_seconds_bucket" in e and "(0.99," in e for e in latency)
