"""The package import rules of issue 16 (and DESIGN.md's house rules), read from the source with `ast`.

One way down: cli -> (engine | locust | reports | infra) -> results -> the seam. The harness never
imports reports, targets or workloads (it finds them by entry point); workloads and targets never
import each other; no locustfile talks to Kafka or PostgreSQL itself (the targets' drivers do);
reports read run directories and the results types only.

Every import counts, wherever it is in a module (inside functions and `if TYPE_CHECKING:` too);
relative imports are resolved against the module's package. A failing rule lists every offending
`file:line: module`, so the fix is a grep away.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str  # the full dotted name imported, e.g. "harness.results.gate"

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.module}"


def _package_of(path: Path, root: Path) -> list[str]:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return parts[:-1]  # a module's package; an __init__'s package is its own folder, also parts[:-1]


def imports_of(path: Path, root: Path = ROOT) -> Iterator[Import]:
    """Every module `path` imports; `from a import b` counts as a.b too (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = _package_of(path, root)
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield Import(path, node.lineno, module)
            for alias in node.names:
                if alias.name != "*":
                    yield Import(path, node.lineno, f"{module}.{alias.name}")


def sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


def is_under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(folder: str, forbidden: Callable[[str], bool]) -> list[str]:
    """`file:line: module` of each forbidden import (the shortest forbidden name of a line)."""
    found: dict[tuple[Path, int], Import] = {}
    for path in sources(folder):
        for imp in imports_of(path):
            key = (imp.path, imp.line)
            if forbidden(imp.module) and (key not in found or len(imp.module) < len(found[key].module)):
                found[key] = imp
    return [str(found[key]) for key in sorted(found)]


# -- the reader itself --------------------------------------------------------------------------------


def test_the_reader_sees_plain_from_relative_and_nested_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "harness" / "engine"
    pkg.mkdir(parents=True)
    source = pkg / "mod.py"
    source.write_text("import reports.html\nfrom ..results import gate\nfrom . import eager\n"
                      "def f():\n    from targets.echo import driver\n", encoding="utf-8")
    found = {(i.line, i.module) for i in imports_of(source, tmp_path)}
    assert {(1, "reports.html"), (2, "harness.results"), (2, "harness.results.gate"), (3, "harness.engine.eager"),
            (5, "targets.echo"), (5, "targets.echo.driver")} <= found


def test_a_relative_import_in_a_packages_init_is_resolved_against_that_package(tmp_path: Path) -> None:
    pkg = tmp_path / "reports"
    pkg.mkdir()
    init = pkg / "__init__.py"
    init.write_text("from .charts import draw\nfrom ..harness import cli\n", encoding="utf-8")
    found = {i.module for i in imports_of(init, tmp_path)}
    assert {"reports.charts", "reports.charts.draw", "harness", "harness.cli"} <= found


def test_every_rule_reads_some_source() -> None:
    for folder in ("harness", "workloads", "targets", "reports", "workloads/locustfiles"):
        assert sources(folder), f"no Python source under {folder}/: the rules would pass vacuously"


# -- the rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("room", ["reports", "targets", "workloads"])
def test_the_harness_never_imports_reports_targets_or_workloads(room: str) -> None:
    bad = violations("harness", lambda m: is_under(m, room))
    assert not bad, (f"the harness imports {room} (find it by entry point, or pass it down from the CLI):\n"
                     + "\n".join(bad))


def test_workloads_never_import_targets() -> None:
    bad = violations("workloads", lambda m: is_under(m, "targets"))
    assert not bad, "workloads say what is sent, targets how; they do not import each other:\n" + "\n".join(bad)


def test_targets_never_import_workloads() -> None:
    bad = violations("targets", lambda m: is_under(m, "workloads"))
    assert not bad, ("targets know the driver protocol and nothing of the workloads "
                     "(move shared code to the harness seam or to the workload):\n" + "\n".join(bad))


@pytest.mark.parametrize("client", ["aiokafka", "confluent_kafka", "asyncpg"])
def test_no_locustfile_talks_to_kafka_or_postgresql_itself(client: str) -> None:
    bad = violations("workloads/locustfiles", lambda m: is_under(m, client))
    assert not bad, f"a locustfile imports {client}: it must go through the target's driver:\n" + "\n".join(bad)


def test_reports_import_only_the_results_layer_of_the_harness() -> None:
    def forbidden(module: str) -> bool:
        return is_under(module, "harness") and not is_under(module, "harness.results") and module != "harness"

    bad = violations("reports", forbidden)
    assert not bad, "reports read run directories and harness.results only:\n" + "\n".join(bad)
