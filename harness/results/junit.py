"""JUnit XML as CI test reporters (Jenkins, GitLab, GitHub) read it: one testcase per check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.results.gate import Check


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:g} {unit}".strip()


def write_checks(path: Path, name: str, checks: list[Check], duration_s: float = 0.0) -> None:
    """The SLO and integrity checks of one run."""
    suite = _suite(f"edabench.{name}", duration_s)
    failures = 0
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=f"edabench.{name}.{c.op}", name=c.name, time="0")
        if not c.passed:
            failures += 1
            kind = "integrity" if c.integrity else ("interrupted" if c.name == "complete" else "slo")
            msg = f"{c.name}: goal {_fmt(c.goal, c.unit)}, measured {_fmt(c.measured, c.unit)}"
            ET.SubElement(case, "failure", message=msg, type=kind).text = c.detail or msg
    _close(path, suite, len(checks), failures)


def write_baseline(path: Path, name: str, comparisons: list[Any]) -> None:
    """A baseline comparison, in its own file (it never overwrites the run's own gate.xml)."""
    suite = _suite(f"edabench.{name}.baseline", 0.0)
    failures = 0
    for c in comparisons:
        case = ET.SubElement(suite, "testcase", classname=f"edabench.{name}.baseline.{c.op}", name=c.metric,
                             time="0")
        if c.regression:
            failures += 1
            msg = (f"{c.metric}: baseline {_fmt(c.baseline, c.unit)}, current {_fmt(c.current, c.unit)}"
                   + (f", x{c.ratio:.3f}" if c.ratio is not None else ""))
            ET.SubElement(case, "failure", message=msg, type="regression").text = getattr(c, "detail", "") or msg
    _close(path, suite, len(comparisons), failures)


def _suite(name: str, duration_s: float) -> ET.Element:
    return ET.Element("testsuite", name=name, timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                      time=f"{duration_s:.3f}", hostname="localhost")


def _close(path: Path, suite: ET.Element, tests: int, failures: int) -> None:
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", "0")
    root = ET.Element("testsuites", name=suite.get("name", ""), tests=str(tests), failures=str(failures),
                      errors="0", time=suite.get("time", "0"))
    root.append(suite)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
