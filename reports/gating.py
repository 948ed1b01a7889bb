"""The one place the report asks the gate what passes and what regressed.

`edabench gate` and the report must never disagree, so the report calls the gate's own
functions instead of re-deriving pass/fail or regression rules.
"""

from __future__ import annotations

from typing import Any

from harness.results.gate import DEFAULT_TOLERANCE, Check, Delta, evaluate_slos
from harness.results.gate import compare_summaries as compare_runs

__all__ = ["DEFAULT_TOLERANCE", "Check", "Delta", "compare_runs", "evaluate_slos", "slo_of"]


def slo_of(run: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """The goals a run was held to: summary.json's copy, else the spec's."""
    slo = summary.get("slo")
    if not slo:
        slo = (run.get("spec") or {}).get("slo") or {}
    return slo if isinstance(slo, dict) else {}
