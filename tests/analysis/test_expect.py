"""analysis/expect.py: the expectations file (every problem as path:line: reason) and the diff."""

from __future__ import annotations

import pytest

from analysis.alerts import Alert
from analysis.expect import ExpectFileError, compare, load_expectations, parse_expectations

T0 = 1_714_557_600_000_000_000


def eve(sid: int, src="10.0.0.1", dest="10.0.0.2", sport=40000, dport=22, proto="TCP", sig="ET TEST", sev=2,
        app=None, gid=1) -> dict:
    e = {"timestamp": "2024-05-01T10:00:00.000000+0000", "event_type": "alert", "src_ip": src, "src_port": sport,
         "dest_ip": dest, "dest_port": dport, "proto": proto,
         "alert": {"action": "allowed", "gid": gid, "signature_id": sid, "rev": 1, "signature": sig,
                   "category": "", "severity": sev}}
    if app:
        e["app_proto"] = app
    return e


def write(tmp_path, text: str, name="expect.yaml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def errors(tmp_path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ExpectFileError) as info:
        load_expectations(path)
    return [str(e).removeprefix(path) for e in info.value.errors]


# --- loading -----------------------------------------------------------------------------------------

def test_load_every_key(tmp_path):
    path = write(tmp_path, """\
# CI expectations
only: true
alerts:
  - sid: 2001219
    count: 1
    src_ip: 10.0.0.1
    dest_ip: 10.0.0.0/24
    src_port: 40000
    dest_port: 22
    proto: tcp
    app_proto: ssh
    gid: 1
    severity: 2
    signature: brute
  - 9000001
  - sid: 9000002
    count: 0
""")
    exp = load_expectations(path)
    assert exp.only is True and exp.only_line == 2 and exp.path == path
    a, b, c = exp.alerts
    assert (a.sid, a.count, a.line) == (2001219, 1, 4)
    assert dict(a.where) == {"gid": 1, "src_ip": "10.0.0.1", "src_port": 40000, "dest_ip": "10.0.0.0/24",
                             "dest_port": 22, "proto": "tcp", "app_proto": "ssh", "severity": 2, "signature": "brute"}
    assert (b.sid, b.count, b.where, b.line) == (9000001, None, (), 15)
    assert (c.sid, c.count, c.line) == (9000002, 0, 16)
    assert exp.sids == {2001219, 9000001, 9000002}


def test_minimal_files(tmp_path):
    assert load_expectations(write(tmp_path, "alerts: []\n")).alerts == ()
    exp = load_expectations(write(tmp_path, "only: true\n"))  # nothing may fire
    assert exp.only and exp.alerts == ()
    assert load_expectations(write(tmp_path, "alerts:\n")).alerts == ()


def test_every_problem_with_its_line(tmp_path):
    assert errors(tmp_path, """\
only: yes please
alerts:
  - sid: 0
  - count: 2
  - sid: 5
    count: -1
    src_ip: 10.0.0.300
    dest_port: 70000
    colour: red
  - sid: "12"
  - just text
  - sid: 7
    severity: true
    proto: ""
extra: 1
""") == [
        ":1: only must be true or false, not 'yes please'",
        ":3: sid must be a whole number >= 1, not 0",
        ":4: this entry has no sid",
        ":6: count must be a whole number >= 0, not -1",
        ":7: src_ip must be an IP address or CIDR, not '10.0.0.300'",
        ":8: dest_port must be a port 0-65535, not 70000",
        ":9: unknown key 'colour' (one of sid, count, gid, src_ip, src_port, dest_ip, dest_port, proto, "
        "app_proto, severity, signature)",
        ":10: sid must be a whole number >= 1, not '12'",
        ":11: an alerts entry is a mapping with a sid (or a bare sid), not 'just text'",
        ":13: severity must be a whole number >= 1, not True",
        ":14: proto must be text, not ''",
        ":15: unknown key 'extra' (one of alerts, only)",
    ]


def test_bad_files(tmp_path):
    assert errors(tmp_path, "alerts: [\n  - sid: 1\n") == [":2: invalid YAML: expected the node content, but found '-'"]
    assert errors(tmp_path, "- sid: 1\n") == [":1: an expectations file is a YAML mapping with an `alerts:` list"]
    assert errors(tmp_path, "alerts: {sid: 1}\n") == [":1: alerts must be a list of entries (- sid: N ...)"]
    with pytest.raises(ExpectFileError) as info:
        load_expectations(str(tmp_path / "missing.yaml"))
    assert str(info.value) == f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"
    (tmp_path / "latin1.yaml").write_bytes(b"alerts: []  # caf\xe9\n")
    with pytest.raises(ExpectFileError, match="latin1.yaml: cannot read: 'utf-8' codec"):
        load_expectations(str(tmp_path / "latin1.yaml"))


# --- comparing -----------------------------------------------------------------------------------------

def test_all_hold(tmp_path):
    exp = parse_expectations("""\
only: true
alerts:
  - sid: 1
    count: 2
  - sid: 2
    src_ip: 10.0.0.0/8
    dest_port: 22
    proto: TCP
  - sid: 3
    count: 0
  - sid: 4
    signature: Port SCAN
    app_proto: SSH
""", "e.yaml")
    alerts = [eve(1), eve(1, src="2001:db8::1"), eve(2, src="10.9.9.9"), eve(2, src="192.0.2.1"),
              eve(4, sig="port scan: 40 ports", app="ssh"), {"event_type": "flow", "src_ip": "10.0.0.1"}]
    assert compare(exp, alerts) == []


def test_diff_one_line_per_expectation_and_per_unexpected_sid():
    exp = parse_expectations("""\
only: true
alerts:
  - sid: 1
    count: 1
  - sid: 2
    src_ip: 10.0.0.1
    dest_port: 22
  - sid: 3
    count: 0
  - sid: 5
  - sid: 6
    signature: "scan"
""", "e.yaml")
    alerts = [eve(1), eve(1), eve(2, src="10.0.0.1", dport=23), eve(2, src="10.0.0.7"), eve(3),
              eve(6, sig="brute force"), eve(9, sig="ET Other"), eve(8), eve(9, sig="ET Other")]
    assert compare(exp, alerts) == [
        "e.yaml:3: sid 1: expected exactly 1, got 2",
        "e.yaml:5: sid 2 src_ip=10.0.0.1 dest_port=22: expected at least 1, got 0 (of 2 alerts with this sid)",
        "e.yaml:8: sid 3: expected none, got 1",
        "e.yaml:10: sid 5: expected at least 1, got 0",
        "e.yaml:11: sid 6 signature='scan': expected at least 1, got 0 (of 1 alerts with this sid)",
        "e.yaml:1: sid 8 'ET TEST': expected none (only: true), got 1",
        "e.yaml:1: sid 9 'ET Other': expected none (only: true), got 2",
    ]
    exp_any = parse_expectations("alerts: [5]\n", "f.yaml")
    assert compare(exp_any, alerts) == ["f.yaml:1: sid 5: expected at least 1, got 0"]  # no `only`: others fine


def test_alert_objects_and_hostile_events():
    exp = parse_expectations("alerts:\n  - sid: 9000001\n    proto: tcp\n    count: 1\n", "e.yaml")
    scan = Alert(ts_ns=T0, signature_id=9000001, signature="Port scan", severity=2, src_ip="10.0.0.66",
                 dest_ip="10.0.0.5", proto="tcp")
    assert compare(exp, [scan]) == []
    junk = [None, 7, "text", {}, {"alert": "x"}, {"event_type": "alert", "alert": {}},
            {"alert": {"signature_id": 9000001}, "src_ip": "not an ip"},
            {"alert": {"signature_id": "9000001"}}]
    assert compare(exp, [scan, *junk]) == []  # only the one real alert of sid 9000001 (proto tcp) counts
    exp_ip = parse_expectations("only: true\nalerts:\n  - sid: 9000001\n    src_ip: 10.0.0.0/8\n", "e.yaml")
    assert compare(exp_ip, junk) == [
        "e.yaml:3: sid 9000001 src_ip=10.0.0.0/8: expected at least 1, got 0 (of 1 alerts with this sid)",
        "e.yaml:1: sid 9000001 '': expected none (only: true), got 1",  # the string sid '9000001' is another sid
    ]
