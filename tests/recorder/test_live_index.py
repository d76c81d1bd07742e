"""The recorder's packet index: what the daemon indexes as it writes files is what an ingest of
its sealed files indexes, and `wiretrail extract` gets a flow spanning rotated files as tcpdump
does from the files; files retention deleted are named."""

from __future__ import annotations

import re
import shutil
import sqlite3

import dpkt
import pytest
from click.testing import CliRunner

from analysis.cli import main as wiretrail
from tests.recorder.live import index_rows, records


def cli(*args: str):
    return CliRunner().invoke(wiretrail, list(args))


def test_live_index_equals_ingest_and_extract_spans_files(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    if shutil.which("tcpdump") is None:
        pytest.skip("tcpdump is not installed")
    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0").ready()
    netns.replay(loop_pcap, pps=10000)
    assert rec.stop() == 0, rec.text()
    files = sorted(rec.out.glob("*.pcap"))
    assert len(files) >= 5
    # its own account of the index's cost, as bench_recorder.py reports it
    spent = re.search(r"packet index \S+: ([\d.]+) s of CPU, ([\d.]+)% of this meter process's", rec.text())
    assert spent and float(spent.group(1)) > 0 and 0 < float(spent.group(2)) < 100, rec.text()[-2000:]

    again = tmp_path / "ingest.db"
    r = cli("ingest", "--no-parsers", "--db", str(again), *map(str, files))
    assert r.exit_code == 0, r.output
    live = index_rows(rec.db)
    assert sum(r[5] for r in live) > 1000 and live == index_rows(again)

    with sqlite3.connect(rec.db) as conn:
        conn.row_factory = sqlite3.Row
        chosen = conn.execute(
            "SELECT f.* FROM flows f WHERE f.proto = 'tcp' AND f.orig_pkts + f.resp_pkts > 4 ORDER BY "
            "f.orig_pkts + f.resp_pkts DESC LIMIT 30").fetchall()
    spanning = 0
    for f in chosen:
        out = tmp_path / "x.pcap"
        r = cli("extract", "--db", str(rec.db), "--uid", f["uid"], "--out", str(out))
        assert r.exit_code == 0, r.output
        with open(out, "rb") as fh:
            got = [bytes(b) for _, b in dpkt.pcap.Reader(fh)]
        expr = (f"tcp and host {f['orig_h']} and host {f['resp_h']} and port {f['orig_p']} "
                f"and port {f['resp_p']}")
        assert got == records(files, expr, tmp_path / "ref.pcap"), f["uid"]
        spanning += "from 1 file" not in r.stderr
    assert spanning, "no flow spans rotated files"

    # a file retention deleted: named on one line, the rest still extracted
    victim = files[1]
    with sqlite3.connect(rec.db) as conn:
        conn.execute("UPDATE captures SET deleted_at = 1, deleted_reason = 'retain_bytes' WHERE path = ?",
                     (str(victim),))
    victim.unlink()
    r = cli("extract", "--db", str(rec.db), "--since", "2000-01-01", "--out", str(tmp_path / "all.pcap"))
    assert r.exit_code == 0, r.output
    named = [ln for ln in r.stderr.splitlines() if "deleted by the recorder" in ln]
    assert named == [f"Warning: {victim}: deleted by the recorder (retain_bytes); its packets are not in "
                     "the output"]
