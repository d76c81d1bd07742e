"""The layout tells the truth: analysis -> recorder.core, never back; the core stays pure, without
import cycles; no module imports a private name from another."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

CORE_FORBIDDEN = ("analysis", "click", "rich", "pcapy_live", "recorder.capture", "recorder.daemon",
                  "recorder.stream", "recorder.sinks", "recorder.sdnotify")


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(package: str):
    return sorted((REPO / package).rglob("*.py"))


def test_recorder_never_imports_analysis():
    for path in modules("recorder"):
        bad = [n for n in imports_of(path) if n == "analysis" or n.startswith("analysis.")]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_core_is_pure():
    for path in modules("recorder/core"):
        bad = [n for n in imports_of(path) if any(n == f or n.startswith(f + ".") for f in CORE_FORBIDDEN)]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_analysis_uses_only_the_core_of_recorder():
    for path in modules("analysis"):
        bad = [n for n in imports_of(path)
               if n.startswith("recorder.") and not n.startswith("recorder.core") or n == "recorder.cli"]
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def core_graph(*packages: str) -> dict[str, set[str]]:
    """The modules of ``packages`` (directories; recorder/core unless given) -> the modules of those
    packages they import (deferred imports too; ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    mods = {}
    for path in [p for package in packages or ("recorder/core",) for p in modules(package)]:
        rel = path.relative_to(REPO).with_suffix("")
        if "_compiled" in rel.parts or "migrations" in rel.parts:
            continue
        name = ".".join(rel.parts)
        mods[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, path in mods.items():
        pkg = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for a in node.names:
                    target = f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                    if target in mods and target != m:
                        graph[m].add(target)
            elif isinstance(node, ast.Import):
                graph[m].update(a.name for a in node.names if a.name in mods and a.name != m)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (its modules in order, the first again at the end), or None."""
    done: set[str] = set()

    def visit(m: str, path: list[str]) -> list[str] | None:
        if m in path:
            return path[path.index(m):] + [m]
        if m in done:
            return None
        for n in sorted(graph.get(m, ())):
            found = visit(n, path + [m])
            if found:
                return found
        done.add(m)
        return None

    for m in sorted(graph):
        found = visit(m, [])
        if found:
            return found
    return None


def test_no_import_cycle_in_the_core():
    cycle = find_cycle(core_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_no_import_cycle_anywhere():
    """Not in the core, not in the live side, not in analysis (behaviour's detectors, chain and
    windows share their SQL helpers through behaviour/queries.py, not through each other)."""
    cycle = find_cycle(core_graph("recorder", "analysis"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_the_cycle_check_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_private_name_is_imported_from_another_module():
    bad = []
    for package in ("recorder", "analysis"):
        for path in modules(package):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("recorder", "analysis"):
                    bad += [f"{path.relative_to(REPO)}:{node.lineno} imports {a.name} from {node.module}"
                            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def imported_test_modules(source: str, package: str = "tests") -> list[str]:
    """The test modules (``test_*``) and conftests that ``source`` (a module of ``package``) imports,
    deferred imports and relative ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            candidates = [a.name for a in node.names if a.name.split(".")[0] == "tests"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "tests":
                continue
            candidates = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found += [c for c in candidates if any(p.startswith("test_") or p == "conftest" for p in c.split("."))]
    return found


def test_the_test_import_check_finds_a_test_module_imported():
    assert imported_test_modules("from tests.core.apps.test_smb import nb") == ["tests.core.apps.test_smb",
                                                                                "tests.core.apps.test_smb.nb"]
    assert imported_test_modules("def f():\n    from tests.core.apps import test_smb, windows_traffic\n") == [
        "tests.core.apps.test_smb"]
    assert imported_test_modules("import tests.conftest") == ["tests.conftest"]
    assert imported_test_modules("from .test_dns import rr", "tests.core.apps") == ["tests.core.apps.test_dns",
                                                                                    "tests.core.apps.test_dns.rr"]
    assert imported_test_modules("from . import conftest", "tests.analysis.report") == [
        "tests.analysis.report.conftest"]
    assert imported_test_modules("from tests.helpers.smb import nb\nfrom tests.analysis.story import scenes\n"
                                 "from analysis.expect import test_case") == []


def test_no_test_module_imports_another():
    """What two test files share lives in tests/helpers (or a builder module beside them, such as
    tests/analysis/behaviour/traffic.py): no module under tests/ imports a test module or a conftest,
    so running, moving or deleting one test file never changes another."""
    bad = []
    for path in modules("tests"):
        rel = path.relative_to(REPO).with_suffix("")
        package = ".".join(rel.parts if path.name == "__init__.py" else rel.parts[:-1])
        bad += [f"{path.relative_to(REPO)} imports {m}" for m in imported_test_modules(path.read_text(), package)]
    assert not bad, "\n".join(bad)
