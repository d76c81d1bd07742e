"""The layout tells the truth: analysis -> recorder.core, never back; the core stays pure, without
import cycles; no module imports a private name from another."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

CORE_FORBIDDEN = ("analysis", "click", "rich", "pcapy_live", "recorder.capture", "recorder.daemon")


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


def core_graph() -> dict[str, set[str]]:
    """recorder.core's modules -> the modules of recorder.core they import (deferred imports too;
    ``from pkg import mod`` counts as importing ``pkg.mod``)."""
    mods = {}
    for path in modules("recorder/core"):
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
