"""The one place the report asks the gate what passes and what regressed.

`edabench gate` and the report must never disagree, so the report calls the gate's own
functions instead of re-deriving pass/fail or regression rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.results import baseline as baselines
from harness.results.gate import DEFAULT_TOLERANCE, Check, Delta, evaluate_slos
from harness.results.gate import compare_summaries as compare_summaries

__all__ = ["DEFAULT_TOLERANCE", "Check", "Delta", "compare_runs", "evaluate_slos", "slo_of"]


def compare_runs(current: Path, baseline: Path, tolerance: float = DEFAULT_TOLERANCE
                 ) -> tuple[list[Delta], list[str]]:
    """The gate's own baseline verdicts (harness.results.baseline), as report rows, and its notes.

    A report compares whatever it is given (forced), and says in the notes what differed; the
    gate refuses the same pair unless forced."""
    deltas: list[Delta] = []
    notes: list[str] = []
    for c in baselines.compare(current, [baseline], force=True, tolerance=tolerance):
        if not c.unit:
            notes.append(f"{c.op}: {c.detail}" if c.op not in ("run", "overall") else c.detail)
            continue
        deltas.append(Delta(c.op, c.metric, c.baseline, c.current, c.ratio, bool(c.regression), c.unit))
    return deltas, notes


def slo_of(run: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The goals a run was held to: summary.json's copy, else the spec's."""
    slo = summary.get("slo")
    if not slo:
        slo = (run.get("spec") or {}).get("slo") or {}
    return slo if isinstance(slo, dict) else {}
