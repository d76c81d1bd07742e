"""Shared test helpers (no test module imports another: what two test files need lives here).

This package: where the shared reference data lives, and the CLI under test. Its modules:
``packets`` (frames, pcap and pcapng builders), ``streams`` (TCP-stream extractors and feeding
parsers), ``zeek`` (the Zeek-log reader and agreement with Zeek's baselines), ``tls``, ``dns``,
``smb`` (protocol message builders), ``decode`` (the decoder's sample frames), ``store`` (flow
rows), ``postgres`` (the test database's schema), ``evtx`` (Windows .evtx files built for the
tests), ``scorers`` (a shared scorer run in parts, one per CPU)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
REFERENCE = SHARED / "reference"
GEN_TRAFFIC = SHARED / "bench" / "gen_traffic.py"


def wiretrail_cli() -> str:
    """The installed ``wiretrail`` script next to the running interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "wiretrail"
    if beside.exists():
        return str(beside)
    found = shutil.which("wiretrail")
    if not found:
        pytest.skip("the wiretrail console script is not installed (pip install -e .)")
    return found


def need(path: Path, what: str) -> Path:
    """Skip the test with a clear reason when shared reference data is absent."""
    if not path.exists():
        pytest.skip(f"{what} not found at {path} (../shared is not part of a plain clone)")
    return path
