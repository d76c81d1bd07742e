"""`wiretrail ingest` of a damaged capture: one warning line naming the skipped ranges, every
intact packet ingested, and the ranges kept in the store for `db info`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from analysis.cli import main
from recorder.core.capio.pcapio import read_batches

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def test_ingest_resynchronises_and_db_info_shows_the_ranges(tmp_path):
    offs = [int(o) for b in read_batches(DEMO) for o in b.file_off]
    data = bytearray(DEMO.read_bytes())
    ranges = [(offs[30], offs[32]), (offs[120], offs[121])]
    for a, b in ranges:
        data[a:b] = b"\xa5" * (b - a)
    bad = tmp_path / "carved.pcap"
    bad.write_bytes(data)
    db = tmp_path / "w.db"
    r = CliRunner().invoke(main, ["ingest", "--db", str(db), str(bad)])
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.stderr.splitlines() if "damaged" in ln]
    text = ", ".join(f"{a}-{b}" for a, b in ranges)
    assert warnings == [f"warning: {bad}, offset {ranges[0][0]}: 2 damaged ranges "
                        f"({sum(b - a for a, b in ranges)} bytes) skipped at offsets {text}; "
                        f"resynchronised, read {len(offs) - 3} packets"], r.stderr

    r = CliRunner().invoke(main, ["db", "info", "--db", str(db), "--format", "json"])
    [cap] = json.loads(r.stdout)["captures"]
    assert cap["packets"] == len(offs) - 3
    assert cap["skipped_ranges"] == " ".join(f"{a}-{b}" for a, b in ranges)
    assert cap["skipped_bytes"] == sum(b - a for a, b in ranges)
    r = CliRunner().invoke(main, ["db", "info", "--db", str(db)])
    assert "damaged captures" in r.stdout and f"{ranges[0][0]}-{ranges[0][1]}" in r.stdout
