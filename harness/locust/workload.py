"""Find a locustfile and read its edabench spec without importing it.

A locustfile declares what the harness needs to know (target, target options, SLOs,
rate, warm-up) in a module-level literal ``EDABENCH = {...}``, validated as a workload
spec. It is read with `ast`, not imported, because importing Locust monkey-patches the
standard library (gevent), which the asyncio side that starts services must not suffer.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Any

import orjson

from harness.spec import Spec, SpecError, parse_spec

LOCUSTFILES = Path(__file__).resolve().parents[2] / "workloads" / "locustfiles"
SPEC_NAME = "EDABENCH"
ENV_SPEC = "EDABENCH_LOCUST_SPEC"


def resolve(workload: str | Path) -> Path:
    """A locustfile path, or a short name of one in workloads/locustfiles ("echo" -> echo.py)."""
    p = Path(workload)
    if p.suffix == ".py" and p.exists():
        return p.resolve()
    candidate = LOCUSTFILES / f"{p.stem if p.suffix == '.py' else workload}.py"
    if candidate.exists():
        return candidate
    known = sorted(f.stem for f in LOCUSTFILES.glob("*.py") if not f.name.startswith("_"))
    raise SpecError(f"{workload}: no such locustfile (known: {', '.join(known)})")


def read_literal(path: Path) -> dict[str, Any]:
    """The EDABENCH dict of a locustfile; SpecError if absent or not a literal."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == SPEC_NAME for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise SpecError(f"{path}: {SPEC_NAME} must be a literal dict: {exc}") from None
            if not isinstance(value, dict):
                raise SpecError(f"{path}: {SPEC_NAME} must be a dict")
            return value
    raise SpecError(f"{path}: no module-level {SPEC_NAME} = {{...}} spec")


def load(workload: str | Path, **overrides: Any) -> tuple[Path, Spec]:
    path = resolve(workload)
    spec = parse_spec(read_literal(path), str(path)).with_overrides(**overrides)
    return path, spec


def spec_from_env_or_file(locustfile: str | None) -> Spec | None:
    """Inside a Locust process: the spec the edabench command passed, else the locustfile's own."""
    raw = os.environ.get(ENV_SPEC)
    if raw:
        return parse_spec(orjson.loads(raw), ENV_SPEC)
    if locustfile:
        try:
            return parse_spec(read_literal(Path(locustfile)), locustfile)
        except (SpecError, OSError, SyntaxError):
            return None
    return None
