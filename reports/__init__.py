"""edabench: reports. `build_report(run_dirs, out=None)` writes the HTML report and summary.md.

The export is lazy so that mounting `edabench report` in the CLI does not import matplotlib.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from reports.build import build_report

        return build_report
    raise AttributeError(f"module 'reports' has no attribute {name!r}")
