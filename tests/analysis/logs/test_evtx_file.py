"""`wiretrail logs ingest` and `logs detect` on .evtx files written here (``tests/helpers/evtx``:
no sample set under MIT/Apache could be shipped), read by the real ``evtx`` package: Security
logons (4624 with type and source address, 4625), admin logon, process creation, account
creation, log cleared, NTLM validation and System 7045, over two chunks; gzip; a file cut inside
its second chunk. Without ../shared."""

from __future__ import annotations

import gzip
import json
from datetime import datetime

import pytest
from click.testing import CliRunner

from analysis.cli import main
from tests.helpers.evtx import Record, evtx_file

NS = 1_000_000_000


def ns(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(dt.timestamp()) * NS + dt.microsecond * 1000


RECORDS = [
    Record(4624, "2026-01-02T03:04:05.250000Z", {"SubjectUserName": "DC1$", "TargetUserName": "alice",
                                                 "TargetDomainName": "CORP", "LogonType": 3,
                                                 "IpAddress": "::ffff:192.0.2.10", "IpPort": "50123",
                                                 "WorkstationName": "WS7"}),
    Record(4672, "2026-01-02T03:04:05.300000Z", {"SubjectUserName": "alice", "PrivilegeList": "SeDebugPrivilege"}),
    *[Record(4625, f"2026-01-02T03:05:0{i}Z", {"TargetUserName": user, "LogonType": 3, "IpAddress": "198.51.100.9",
                                                "IpPort": str(40000 + i), "Status": "0xc000006d"})
      for i, user in enumerate(["bob", "carol", "dave", "erin", "frank", "grace"])],
    Record(4688, "2026-01-02T03:06:00Z", {"SubjectUserName": "svc_web", "TargetUserName": "-",
                                          "NewProcessName": "C:\\Windows\\System32\\cmd.exe",
                                          "CommandLine": "cmd.exe /c whoami"}),
    Record(4720, "2026-01-02T03:07:00Z", {"SubjectUserName": "alice", "TargetUserName": "backdoor"}),
    Record(4776, "2026-01-02T03:08:00Z", {"TargetUserName": "carol", "Workstation": "WS9", "Status": "0xc000006a"}),
    Record(7045, "2026-01-02T03:09:00Z", {"ServiceName": "evilsvc", "ImagePath": "C:\\Temp\\x.exe"},
           channel="System", provider="Service Control Manager"),
    Record(1102, "2026-01-02T03:10:00Z", {"SubjectUserName": "alice"}),
]


def ingest(db, *paths):
    return CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), *map(str, paths)])


def rows(db):
    r = CliRunner().invoke(main, ["logs", "--db", str(db), "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_security_and_system_events(tmp_path):
    path = tmp_path / "Security.evtx"
    path.write_bytes(evtx_file(RECORDS, per_chunk=7))  # two chunks of seven
    db = tmp_path / "w.db"
    r = ingest(db, path)
    assert r.exit_code == 0, r.output
    assert f"{path}: evtx, {len(RECORDS)} events read, 0 skipped" in r.stderr
    got = rows(db)
    assert [row["line"] for row in got] == list(range(1, len(RECORDS) + 1))
    logon = got[0]
    assert logon["ts"] == pytest.approx(ns("2026-01-02T03:04:05.250000Z") / NS, abs=1e-6)
    assert (logon["host"], logon["kind"], logon["account"], logon["src_ip"], logon["src_port"],
            logon["action"], logon["outcome"]) == ("DC1.corp.example",
                                                   "windows", "alice", "192.0.2.10", 50123, "logon", "success")
    fields = json.loads(logon["fields"])
    assert (fields["EventID"], fields["LogonType"], fields["Channel"], fields["Provider_Name"]) == \
        (4624, 3, "Security", "Microsoft-Windows-Security-Auditing")
    failed = [row for row in got if json.loads(row["fields"])["EventID"] == 4625]
    assert [(row["account"], row["src_ip"], row["outcome"]) for row in failed] == \
        [(u, "198.51.100.9", "failure") for u in ["bob", "carol", "dave", "erin", "frank", "grace"]]
    by_id = {json.loads(row["fields"])["EventID"]: row for row in got}
    assert (by_id[4672]["action"], by_id[4672]["account"]) == ("special privileges logon", "alice")
    assert (by_id[4688]["action"], by_id[4688]["account"]) == ("process created", "svc_web")
    assert json.loads(by_id[4688]["fields"])["CommandLine"] == "cmd.exe /c whoami"
    assert (by_id[4720]["action"], by_id[4720]["account"]) == ("account created", "backdoor")
    assert (by_id[4776]["action"], by_id[4776]["outcome"]) == ("NTLM credential validation", "failure")
    assert by_id[7045]["action"] == "service installed"
    assert json.loads(by_id[7045]["fields"])["ServiceName"] == "evilsvc"
    assert by_id[1102]["action"] == "audit log cleared"


def test_shipped_rules_fire_on_the_windows_events(tmp_path):
    path = tmp_path / "Security.evtx"
    path.write_bytes(evtx_file(RECORDS))
    db = tmp_path / "w.db"
    assert ingest(db, path).exit_code == 0
    r = CliRunner().invoke(main, ["logs", "detect", "--db", str(db), "--format", "json"])
    assert r.exit_code == 0, r.output
    titles = {a["signature"] for a in json.loads(r.stdout)}
    assert {"Windows Security log cleared", "Windows account created",
            "Administrator logon from another machine"} <= titles, titles
    assert any(t.startswith("Password spraying") for t in titles), titles


def test_gzip_evtx(tmp_path):
    path = tmp_path / "Security.evtx.gz"
    path.write_bytes(gzip.compress(evtx_file(RECORDS[:3])))
    db = tmp_path / "w.db"
    r = ingest(db, path)
    assert r.exit_code == 0 and "evtx, 3 events read, 0 skipped" in r.stderr, r.output


def test_cut_inside_a_chunk(tmp_path):
    """The evtx package reads whole chunks and passes over a cut one: its loss shows in the file
    header's chunk count and is counted as skipped; the whole chunk's events are kept."""
    whole = evtx_file(RECORDS, per_chunk=7)
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(whole[:0x1000 + 0x10000 + 3000])
    db = tmp_path / "w.db"
    r = ingest(db, cut)
    assert r.exit_code == 0, r.output
    assert r.stderr.strip().splitlines() == [f"{cut}: evtx, 7 events read, 1 skipped"], r.stderr
    assert [row["line"] for row in rows(db)] == [1, 2, 3, 4, 5, 6, 7]
    alone = tmp_path / "head.evtx"
    alone.write_bytes(whole[:0x1000 + 3000])  # the header and part of the first chunk: nothing to read
    r = ingest(tmp_path / "b.db", alone)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: nothing could be read from 1 file(s): {alone}: evtx, "), lines
    assert "Traceback" not in r.output
