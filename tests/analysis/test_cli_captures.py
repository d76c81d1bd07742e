"""`wiretrail captures`: what was ingested, with time span, packets and SHA-256."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

from click.testing import CliRunner

from analysis.cli import main

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def test_lists_ingested_capture_with_its_hash(tmp_path):
    db = str(tmp_path / "w.db")
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", "--db", db, str(DEMO)]).exit_code == 0
    r = runner.invoke(main, ["captures", "--db", db, "--format", "csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 1
    assert rows[0]["sha256"] == hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert rows[0]["packets"] == "200" and rows[0]["first_ts"].startswith("2024-03-14T09:00:00")


def test_missing_database_is_one_line(tmp_path):
    r = CliRunner().invoke(main, ["captures", "--db", str(tmp_path / "none.db")])
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "none.db" in r.stderr
