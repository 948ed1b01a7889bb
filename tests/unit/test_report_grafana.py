"""The Grafana dashboard queries only metrics that the harness and the targets really export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "infra" / "grafana" / "edabench.json"
EXPORTERS = {
    "edabench_": ROOT / "harness" / "live.py",
    "bancaire_": ROOT / "targets" / "bank" / "metrics.py",
    "cart_": ROOT / "targets" / "cart" / "metrics.py",
}
METRIC = re.compile(r"\b((?:edabench|bancaire|cart)_[a-z_]+)")
SUFFIXES = ("_bucket", "_total", "_sum", "_count")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def _declared(prefix: str) -> str:
    return EXPORTERS[prefix].read_text()


def test_every_queried_metric_is_exported(dashboard: dict[str, Any]) -> None:
    unknown = set()
    for expr in _queries(dashboard):
        for name in METRIC.findall(expr):
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
    for prefix in EXPORTERS:
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
