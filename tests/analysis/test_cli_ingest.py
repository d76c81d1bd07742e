"""`wiretrail ingest` end to end through the CLI: summary, bad input, idempotence."""

from __future__ import annotations

import json
import struct

from click.testing import CliRunner

from analysis.cli import main


def eth_ipv4_udp(src: bytes, dst: bytes, sport: int, dport: int, payload: bytes) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst) + udp
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00" + ip


def pcap(packets: list[tuple[float, bytes]]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ts, frame in packets:
        sec = int(ts)
        out += struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(frame), len(frame)) + frame
    return out


PKTS = [(1_700_000_000.0 + i, eth_ipv4_udp(b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02", 40000 + i, 53, b"q" * 20))
        for i in range(5)]


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_ingest_summary_and_flows(tmp_path):
    cap = tmp_path / "a.pcap"
    cap.write_bytes(pcap(PKTS))
    db = str(tmp_path / "w.db")
    r = run("ingest", "--db", db, str(cap))
    assert r.exit_code == 0, r.output
    assert "5 packets, 5 flows, 0 malformed" in r.stderr
    r = run("flows", "--db", db, "--format", "jsonl")
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(x["id.orig_p"] for x in rows) == [40000, 40001, 40002, 40003, 40004]
    assert all(x["conn_state"] == "S0" and x["orig_pkts"] == 1 for x in rows)


def test_same_capture_twice_is_skipped(tmp_path):
    cap = tmp_path / "a.pcap"
    cap.write_bytes(pcap(PKTS))
    db = str(tmp_path / "w.db")
    assert run("ingest", "--db", db, str(cap)).exit_code == 0
    r = run("ingest", "--db", db, str(cap))
    assert r.exit_code == 0
    assert "already ingested" in r.stderr
    rows = run("flows", "--db", db, "--format", "jsonl").stdout.splitlines()
    assert len(rows) == 5


def test_truncated_capture_keeps_complete_packets_and_warns_with_offset(tmp_path):
    data = pcap(PKTS)
    cap = tmp_path / "cut.pcap"
    cap.write_bytes(data[:-10])  # the last record loses its tail
    last_record = len(data) - (16 + len(PKTS[-1][1]))
    db = str(tmp_path / "w.db")
    r = run("ingest", "--db", db, str(cap))
    assert r.exit_code == 0, r.output
    assert "4 packets, 4 flows" in r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and str(cap) in warnings[0] and f"offset {last_record}" in warnings[0]


def test_not_a_capture_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a capture\n")
    r = run("ingest", "--db", str(tmp_path / "w.db"), str(bad))
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr


def test_missing_file_is_one_line_and_exit_1(tmp_path):
    r = run("ingest", "--db", str(tmp_path / "w.db"), str(tmp_path / "nope.pcap"))
    assert r.exit_code == 1
    assert "nope.pcap" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_bad_local_net_is_a_usage_error(tmp_path):
    cap = tmp_path / "a.pcap"
    cap.write_bytes(pcap(PKTS))
    r = run("ingest", "--db", str(tmp_path / "w.db"), "--local-net", "10.0.0.300/8", str(cap))
    assert r.exit_code == 2
    assert "--local-net" in r.stderr


def test_local_net_marks_local_hosts(tmp_path):
    cap = tmp_path / "a.pcap"
    cap.write_bytes(pcap([(1_700_000_000.0, eth_ipv4_udp(b"\xcb\x00\x71\x05", b"\x08\x08\x08\x08", 5000, 53, b"x"))]))
    db = str(tmp_path / "w.db")
    assert run("ingest", "--db", db, "--local-net", "203.0.113.0/24", str(cap)).exit_code == 0
    row = json.loads(run("flows", "--db", db, "--format", "jsonl").stdout.splitlines()[0])
    assert row["local_orig"] is True and row["local_resp"] is False
