"""JUnit XML as CI test reporters (Jenkins, GitLab, GitHub) read it: one testcase per check.

Every testcase has classname, name and time; a failure has a type (slo, integrity, interrupted,
regression) and a one-line message with the goal and the measure in their units, its text the
detail; the suite has name, timestamp (UTC), time, tests, failures, errors and skipped.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.results.gate import Check

# characters XML 1.0 cannot hold (ElementTree writes them as they are, and parsers then refuse the file)
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:g} {unit}".strip()


def write_checks(path: Path, name: str, checks: list[Check], duration_s: float = 0.0) -> None:
    """The SLO and integrity checks of one run."""
    suite = _suite(f"edabench.{name}", duration_s)
    failures = 0
    for c in checks:
        case = ET.SubElement(suite, "testcase", classname=_text(f"edabench.{name}.{c.op}"), name=_text(c.name),
                             time="0")
        if not c.passed:
            failures += 1
            kind = "integrity" if c.integrity else ("interrupted" if c.name == "complete" else "slo")
            if c.goal is None and c.measured is None:  # a yes/no check: its detail says what failed
                msg = f"{c.name}: {c.detail or 'failed'}"
            else:
                msg = f"{c.name}: goal {_fmt(c.goal, c.unit)}, measured {_fmt(c.measured, c.unit)}"
            ET.SubElement(case, "failure", message=_text(msg), type=kind).text = _text(c.detail or msg)
    _close(path, suite, len(checks), failures)


def write_baseline(path: Path, name: str, comparisons: list[Any]) -> None:
    """A baseline comparison, in its own file (it never overwrites the run's own gate.xml)."""
    suite = _suite(f"edabench.{name}.baseline", 0.0)
    failures = 0
    for c in comparisons:
        case = ET.SubElement(suite, "testcase", classname=_text(f"edabench.{name}.baseline.{c.op}"),
                             name=_text(c.metric), time="0")
        if c.regression:
            failures += 1
            msg = (f"{c.metric}: baseline {_fmt(c.baseline, c.unit)}, current {_fmt(c.current, c.unit)}"
                   + (f", x{c.ratio:.3f}" if c.ratio is not None else ""))
            ET.SubElement(case, "failure", message=_text(msg), type="regression").text = _text(
                getattr(c, "detail", "") or msg)
    _close(path, suite, len(comparisons), failures)


def _suite(name: str, duration_s: float) -> ET.Element:
    return ET.Element("testsuite", name=_text(name), timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
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
