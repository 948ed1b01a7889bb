"""What `edabench locust` is asked to run: a locustfile, a workload spec, or a bare URL.

A locustfile declares its workload in a module-level literal, read here with `ast` rather than
imported (importing Locust monkey-patches the standard library with gevent, which the asyncio
side that starts services and the target must never suffer):

    EDABENCH = "../bank-smoke.toml"          # a workload spec, relative to the locustfile
    EDABENCH = {"name": ..., "target": ...}  # or the spec itself, as a literal dict

A workload TOML given directly runs with the generic locustfile of this package, whose only
content is the `ScheduledOps` user; so does a bare `--host URL` (the generic `http` target).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.spec import Spec, SpecError, load_spec, parse_spec

SPEC_NAME = "EDABENCH"
LOCUSTFILES = "workloads.locustfiles"
GENERIC_LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
HTTP_TARGET = "http"


@dataclass(frozen=True)
class Workload:
    """The locustfile Locust runs, the spec it runs, and where the spec came from."""

    locustfile: Path
    spec: Spec
    source: str  # the spec's file (TOML or locustfile), for messages and run.json


def locustfiles_dir() -> Path:
    """`workloads/locustfiles`, found by its package name where it is installed (the harness looks
    it up as it looks targets up, by name, and never imports it: no repo paths either)."""
    spec = importlib.util.find_spec(LOCUSTFILES)
    if spec is None or not spec.submodule_search_locations:
        raise SpecError(f"the {LOCUSTFILES} package is not installed: give a locustfile's path")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _locustfile(name: str) -> Path | None:
    p = Path(name)
    if p.suffix == ".py":
        return p.resolve() if p.exists() else None
    candidate = locustfiles_dir() / f"{name}.py"
    return candidate if candidate.exists() and "/" not in name else None


def read_literal(path: Path) -> dict[str, Any] | str:
    """The EDABENCH literal of a locustfile (a spec dict or a TOML path); SpecError if absent."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        if any(isinstance(t, ast.Name) and t.id == SPEC_NAME for t in targets) and node.value is not None:
            try:
                value = ast.literal_eval(node.value)
            except ValueError as exc:
                raise SpecError(f"{path}: {SPEC_NAME} must be a literal (a dict or a TOML path): {exc}") from None
            if not isinstance(value, dict | str):
                raise SpecError(f"{path}: {SPEC_NAME} must be a spec dict or the path of a workload TOML")
            return value
    raise SpecError(f"{path}: no module-level {SPEC_NAME} = {{...}} or {SPEC_NAME} = \"spec.toml\"")


def spec_of_locustfile(path: Path) -> tuple[Spec, str]:
    """The spec a locustfile declares, and its source (the TOML it names, or the locustfile)."""
    value = read_literal(path)
    if isinstance(value, str):
        toml = (path.parent / value).resolve()
        return load_spec(toml), str(toml)
    return parse_spec(value, str(path)), str(path)


def resolve(workload: str | None, host: str | None = None) -> Workload:
    """A locustfile (path, or a name in workloads/locustfiles), a workload TOML, or just `--host`."""
    if workload is None:
        if not host:
            raise SpecError("give a workload (a locustfile, a name in workloads/locustfiles or a TOML spec) "
                            "or --host URL to drive a URL with the generic http target")
        spec = parse_spec({"name": "locust-http", "target": HTTP_TARGET, "target_options": {"url": host}},
                          "--host")
        return Workload(GENERIC_LOCUSTFILE, spec, "--host")
    if workload.endswith(".toml"):
        return Workload(GENERIC_LOCUSTFILE, load_spec(workload), str(Path(workload)))
    path = _locustfile(workload)
    if path is None:
        known = sorted(f.stem for f in locustfiles_dir().glob("*.py") if not f.name.startswith("_"))
        raise SpecError(f"{workload}: no such locustfile or workload spec (known locustfiles: {', '.join(known)})")
    spec, source = spec_of_locustfile(path)
    return Workload(path, spec, source)
