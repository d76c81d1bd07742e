"""The layout tells the truth: analysis -> recorder.core, never back; the core stays pure."""

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
