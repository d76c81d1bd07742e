"""`wiretrail replay`: exit codes 0, 1 (bad rule file, as path:line: reason) and 3 (--fail-on),
EVE output, --db, signatures matched (the shipped ones by default), --skip-invalid."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from analysis.cli import main
from tests.analysis.behaviour.traffic import Capture, normal_office


@pytest.fixture(scope="module")
def scan_pcap(tmp_path_factory):
    """A port scan (severity 2) and nothing else."""
    cap = Capture()
    for i, port in enumerate(range(1, 41)):
        cap.rejected(i * 0.01, "10.0.0.66", "10.0.0.5", 40000 + i, port)
    return cap.write(tmp_path_factory.mktemp("scan") / "scan.pcap")


@pytest.fixture(scope="module")
def normal_pcap(tmp_path_factory):
    cap = Capture()
    normal_office(cap, random.Random(11))
    return cap.write(tmp_path_factory.mktemp("normal") / "normal.pcap")


def replay(*args):
    return CliRunner().invoke(main, ["replay", *map(str, args)])


def test_normal_traffic_exits_0_with_no_alerts(normal_pcap):
    r = replay(normal_pcap, "--format", "json", "--fail-on", "any")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == []
    assert "20 behaviour rules, 0 alerts" in r.stderr


def test_fail_on_severity_and_any(scan_pcap, tmp_path):
    eve = tmp_path / "eve.json"
    r = replay(scan_pcap, "--fail-on", "any", "--eve", eve, "--format", "jsonl")
    assert r.exit_code == 3, r.output
    [line] = eve.read_text().splitlines()
    event = json.loads(line)
    assert event["event_type"] == "alert" and event["alert"]["signature_id"] == 9000001
    assert [json.loads(x) for x in r.stdout.splitlines()] == [event]
    assert replay(scan_pcap, "--fail-on", "2").exit_code == 3
    r = replay(scan_pcap, "--fail-on", "1")  # the port scan is severity 2
    assert r.exit_code == 0, r.output
    assert "Port scan: 10.0.0.66 probed 40 tcp ports" in r.stdout


def test_bad_rule_file_exits_1_with_path_and_line(scan_pcap, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: 7\nname: x\nkind: port_scan\nseverity: 0\ntactic: t\ntechnique: t\ndescription: d\n")
    r = replay(scan_pcap, "--rules", bad)
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {bad}:4: severity must be 1 (highest), 2 or 3"]
    assert r.stdout == ""


def test_missing_rule_path_exits_1(scan_pcap, tmp_path):
    r = replay(scan_pcap, "--rules", tmp_path / "nope.yaml")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {tmp_path / 'nope.yaml'}: no such file or directory"]


def test_only_the_given_rules_and_signature_files_matched(scan_pcap, tmp_path):
    from analysis.replay import SHIPPED_RULES

    # a signature for the scanner's SYNs to one port, beside one behaviour rule
    (tmp_path / "local.rules").write_text('alert tcp any any -> any 22 (msg:"syn to ssh"; flags:S; sid:1;)\n')
    r = replay(scan_pcap, "--rules", SHIPPED_RULES / "behaviour" / "host-sweep.yaml", "--rules", tmp_path / "local.rules",
               "--format", "jsonl", "--db", tmp_path / "keep.db")
    assert r.exit_code == 0, r.output
    sids = [json.loads(line)["alert"]["signature_id"] for line in r.stdout.splitlines()]
    assert 1 in sids
    assert 9000001 not in sids  # the port scan rule was not given: not evaluated

def test_unreadable_capture_exits_1(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("not a capture\n")
    r = replay(f)
    assert r.exit_code == 1
    assert str(f) in r.stderr


def test_shipped_signatures_match_by_default_and_skip_invalid(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.5", "198.51.100.7", 40000, 80,
                [(b"GET /cgi-bin/../../etc/passwd HTTP/1.1\r\nHost: shop.example\r\n\r\n",
                  b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")])
    pcap = cap.write(tmp_path / "passwd.pcap")
    r = replay(pcap, "--format", "jsonl")
    assert r.exit_code == 0, r.output
    [event] = [json.loads(line) for line in r.stdout.splitlines()]
    assert event["alert"]["signature_id"] == 9100004 and event["app_proto"] == "http"
    assert (event["src_ip"], event["dest_port"], event["direction"]) == ("10.0.0.5", 80, "to_server")

    rules = tmp_path / "mixed.rules"
    rules.write_text('alert tcp any any -> any any (msg:"bad"; ftpbounce; sid:1;)\n'
                     'alert http any any -> any any (msg:"uri"; http.uri; content:"/etc/passwd"; sid:2;)\n')
    r = replay(pcap, "--rules", rules)
    assert r.exit_code == 1 and f"{rules}:1: unsupported keyword ftpbounce" in r.stderr
    r = replay(pcap, "--rules", rules, "--skip-invalid", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert f"warning: skipped: {rules}:1: unsupported keyword ftpbounce" in r.stderr.splitlines()
    assert [json.loads(line)["alert"]["signature_id"] for line in r.stdout.splitlines()] == [2]


def test_truncated_capture_warns_once_and_keeps_what_was_read(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.5", "198.51.100.7", 40000, 80, [(b"GET /etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", b"")])
    whole = Path(cap.write(tmp_path / "whole.pcap")).read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-10])  # the last packet's record is torn
    r = replay(cut, "--format", "jsonl")
    assert r.exit_code == 0, r.output
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "truncated record" in warnings[0] and str(cut) in warnings[0]
    assert [json.loads(line)["alert"]["signature_id"] for line in r.stdout.splitlines()] == [9100004]


def test_midstream_sessions_are_inspected_only_with_midstream(tmp_path):
    """A session picked up without its handshake (a capture started while it was open) gets no
    application-layer inspection, as in Suricata's default; --midstream inspects it."""
    from scapy.layers.inet import IP, TCP

    cap = Capture()
    c, s = 1000, 5000
    req, resp = b"GET /secret.zip HTTP/1.1\r\nHost: files\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    cap.add(0.0, IP(src="10.0.0.5", dst="10.0.0.9") / TCP(sport=40000, dport=80, flags="PA", seq=c, ack=s) / req)
    cap.add(0.1, IP(src="10.0.0.9", dst="10.0.0.5") / TCP(sport=80, dport=40000, flags="PA", seq=s,
                                                          ack=c + len(req)) / resp)
    cap.add(0.2, IP(src="10.0.0.5", dst="10.0.0.9") / TCP(sport=40000, dport=80, flags="A", seq=c + len(req),
                                                          ack=s + len(resp)))
    pcap = cap.write(tmp_path / "mid.pcap")
    rules = tmp_path / "t.rules"
    rules.write_text('alert http any any -> any any (msg:"zip"; http.uri; content:".zip"; sid:9;)\n')
    plain = replay(pcap, "--rules", rules, "--format", "json")
    mid = replay(pcap, "--rules", rules, "--format", "json", "--midstream")
    assert plain.exit_code == 0 and mid.exit_code == 0, (plain.output, mid.output)
    assert json.loads(plain.stdout) == []
    assert [a["alert"]["signature_id"] for a in json.loads(mid.stdout)] == [9]
