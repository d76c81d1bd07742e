"""`wiretrail logs ingest` on log files written here: syslog (RFC 3164 across New Year, RFC 5424,
rsyslog's RFC 3339 form), a time zone, journalctl JSON, Apache/nginx access logs (combined,
common, a custom --log-format), gzip, and bad input (binary junk, invalid UTF-8, NUL bytes, a
10 MB line); and the evtx record mapping on records in the evtx package's JSON form."""

from __future__ import annotations

import gzip
import json
import os
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.logs.evtx_reader import flatten, to_event

NS = 1_000_000_000


def ns(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()) * NS


def ingest(db, *args):
    return CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), *map(str, args)])


def events(db, *args):
    r = CliRunner().invoke(main, ["logs", "--db", str(db), "--format", "json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def write(path, lines, mtime=None):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if mtime:
        t = datetime.fromisoformat(mtime).timestamp()
        os.utime(path, (t, t))
    return path


AUTH = [
    "Dec 31 23:59:58 gw sshd[101]: Failed password for invalid user admin from 198.51.100.7 port 40001 ssh2",
    "Jan  1 00:00:02 gw sshd[102]: Accepted publickey for alice from 2001:db8::5 port 40002 ssh2: ED25519 SHA256:abc",
    "Jan  1 00:00:03 gw sshd[103]: Connection closed by authenticating user root 198.51.100.7 port 40003 [preauth]",
    "Jan  1 00:00:04 gw sshd[104]: Connection from 198.51.100.8 port 40004 on 192.0.2.1 port 22 rdomain \"\"",
    "Jan  1 00:00:05 gw sudo:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
    "Jan  1 00:00:06 gw sudo:      bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/tmp ; USER=root ; COMMAND=/bin/sh",
    "Jan  1 00:00:07 gw su[105]: FAILED SU (to root) bob on pts/1",
    "Jan  1 00:00:08 gw useradd[106]: new user: name=mallory, UID=1003, GID=1003, home=/home/mallory, shell=/bin/bash, from=/dev/pts/0",
    "Jan  1 00:00:09 gw usermod[107]: add 'mallory' to group 'sudo'",
    "Jan  1 00:00:10 gw passwd[108]: pam_unix(passwd:chauthtok): password changed for mallory",
    "Jan  1 00:00:11 gw groupadd[109]: group added to /etc/group: name=ops, GID=1004",
    "Jan  1 00:00:12 gw systemd-logind[110]: New session 7 of user alice.",
    "this line is not syslog",
]


def test_syslog_year_rollover_and_every_program(tmp_path):
    db = tmp_path / "w.db"
    log = write(tmp_path / "auth.log", AUTH, mtime="2027-01-01T00:05:00+00:00")
    r = ingest(db, log)
    assert r.exit_code == 0, r.output
    assert f"{log}: syslog, 12 events read, 1 skipped" in r.stderr
    rows = events(db)
    by_line = {row["line"]: row for row in rows}
    assert by_line[1]["ts"] == ns("2026-12-31T23:59:58Z") / NS  # December stays in the old year
    assert by_line[2]["ts"] == ns("2027-01-01T00:00:02Z") / NS
    assert (by_line[1]["action"], by_line[1]["outcome"], by_line[1]["account"], by_line[1]["src_ip"],
            by_line[1]["src_port"]) == ("login", "failure", "admin", "198.51.100.7", 40001)
    assert (by_line[2]["action"], by_line[2]["outcome"], by_line[2]["src_ip"]) == ("login", "success", "2001:db8::5")
    assert json.loads(by_line[2]["fields"])["auth_method"] == "publickey"
    assert json.loads(by_line[3]["fields"])["preauth"] is True
    assert by_line[4]["action"] == "connection" and by_line[4]["src_port"] == 40004
    sudo = json.loads(by_line[5]["fields"])
    assert (by_line[5]["account"], sudo["target_user"], sudo["command"], by_line[5]["outcome"]) == \
        ("alice", "root", "/usr/bin/id", "success")
    assert by_line[6]["outcome"] == "failure" and by_line[6]["account"] == "bob"
    assert (by_line[7]["kind"], by_line[7]["outcome"], by_line[7]["account"]) == ("su", "failure", "bob")
    assert (by_line[8]["action"], by_line[8]["account"]) == ("account created", "mallory")
    assert by_line[9]["action"] == "added to group"
    assert by_line[10]["action"] == "password changed"
    assert by_line[11]["action"] == "group created"
    assert (by_line[12]["action"], by_line[12]["account"]) == ("session opened", "alice")
    assert (by_line[13]["kind"], by_line[13]["raw"], by_line[13].get("ts")) == ("raw", "this line is not syslog", None)
    assert all(row["host"] == "gw" for row in rows if row["kind"] != "raw")
    assert all(row["file"] == str(log) for row in rows)
    # filters
    assert {r["line"] for r in events(db, "--account", "ALICE")} == {2, 5, 12}
    assert {r["line"] for r in events(db, "--host", "198.51.100.0/24")} == {1, 3, 4}
    assert {r["line"] for r in events(db, "--since", "2027-01-01T00:00:10Z", "--until", "2027-01-01T00:00:12Z")} \
        == {10, 11}


def test_time_zone_rfc5424_and_rfc3339(tmp_path):
    db = tmp_path / "w.db"
    log = write(tmp_path / "secure", [
        "Mar  3 10:00:00 web sshd[1]: Invalid user oracle from 192.0.2.9 port 5000",
        "<38>1 2026-03-03T10:00:01.250+01:00 web sshd 2 - - Failed password for root from 192.0.2.9 port 5001 ssh2",
        "2026-03-03T10:00:02.5 web sshd[3]: Accepted password for root from 192.0.2.9 port 5002 ssh2",
    ], mtime="2026-03-04T00:00:00+00:00")
    r = ingest(db, "--tz", "Europe/Paris", log)
    assert r.exit_code == 0, r.output
    ts = [round(row["ts"], 6) for row in events(db)]
    assert ts == [ns("2026-03-03T09:00:00Z") / NS, ns("2026-03-03T09:00:01Z") / NS + 0.25,
                  ns("2026-03-03T09:00:02Z") / NS + 0.5]
    assert CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), "--tz", "Mars/Olympus", str(log)]).exit_code == 2


def test_journal_json(tmp_path):
    db = tmp_path / "w.db"
    msg = "Failed password for root from 203.0.113.4 port 2222 ssh2"
    lines = [json.dumps({"__REALTIME_TIMESTAMP": "1767225600123456", "_HOSTNAME": "box", "SYSLOG_IDENTIFIER": "sshd",
                         "_PID": "77", "MESSAGE": msg}),
             json.dumps({"__REALTIME_TIMESTAMP": "1767225601000000", "_HOSTNAME": "box", "SYSLOG_IDENTIFIER": "sudo",
                         "MESSAGE": list(b"carol : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/true")}),
             json.dumps({"no": "time"})]
    log = write(tmp_path / "journal.json", lines)
    r = ingest(db, log)
    assert r.exit_code == 0 and "journal, 2 events read, 1 skipped" in r.stderr, r.output
    rows = events(db, "--kind", "sshd") + events(db, "--kind", "sudo")
    assert rows[0]["ts"] == 1767225600.123456 and rows[0]["src_ip"] == "203.0.113.4" and rows[0]["host"] == "box"
    assert rows[1]["account"] == "carol"


def test_web_logs_combined_common_custom_and_gzip(tmp_path):
    db = tmp_path / "w.db"
    combined = tmp_path / "access.log.1.gz"
    with gzip.open(combined, "wt") as f:
        f.write('192.0.2.44 - - [05/Feb/2026:12:00:00 +0100] "GET /a.php?id=1%27%20or%201=1 HTTP/1.1" 200 512 '
                '"https://ref.example/" "Mozilla/5.0 (X11; Linux)"\n')
        f.write('192.0.2.44 - jo [05/Feb/2026:12:00:01 +0100] "POST /login HTTP/1.1" 403 - "-" "curl/8"\n')
    common = write(tmp_path / "other_vhosts", ['198.51.100.1 - - [05/Feb/2026:11:00:02 +0000] "GET / HTTP/1.0" 304 0'])
    custom = write(tmp_path / "vhost.log",
                   ['shop.example 198.51.100.2 - - [05/Feb/2026:11:00:03 +0000] "GET /cart HTTP/1.1" 200 10'])
    r = ingest(db, combined, common)
    assert r.exit_code == 0 and "web, 2 events read, 0 skipped" in r.stderr, r.output
    assert r.stderr.strip().splitlines()[-1] == "total: web 3 read, 0 skipped"
    r = ingest(db, "--log-format", '%v %h %l %u %t "%r" %>s %b', custom)
    assert r.exit_code == 0 and "web, 1 events read, 0 skipped" in r.stderr, r.output
    rows = events(db, "--kind", "web")
    assert [r["ts"] for r in rows] == [ns("2026-02-05T11:00:00Z") / NS, ns("2026-02-05T11:00:01Z") / NS,
                                       ns("2026-02-05T11:00:02Z") / NS, ns("2026-02-05T11:00:03Z") / NS]
    f0, f1 = json.loads(rows[0]["fields"]), json.loads(rows[1]["fields"])
    assert (f0["cs-method"], f0["cs-uri-stem"], f0["cs-uri-query"], f0["sc-status"], f0["sc-bytes"],
            f0["cs-referer"], f0["cs-user-agent"]) == ("GET", "/a.php", "id=1%27%20or%201=1", 200, 512,
                                                       "https://ref.example/", "Mozilla/5.0 (X11; Linux)")
    assert (rows[1]["account"], rows[1]["outcome"], f1["sc-status"]) == ("jo", "failure", 403)
    assert json.loads(rows[3]["fields"])["cs-host"] == "shop.example"
    bad = CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), "--log-format", "plain words", str(custom)])
    assert bad.exit_code == 2 and "no known directive" in bad.output


def test_bad_input_counted_and_skipped(tmp_path):
    db = tmp_path / "w.db"
    log = tmp_path / "auth.log"
    good = b"Jan  2 03:04:05 gw sshd[1]: Accepted password for dan from 192.0.2.1 port 1 ssh2\n"
    log.write_bytes(good + b"Jan  2 03:04:06 gw sshd[2]: Failed password for \xff\xfe from 192.0.2.1 port 2\n"
                    + b"Jan  2 03:04:07 gw \x00\x01\x02 binary\n" + b"x" * (10 * 1024 * 1024) + b"\n" + good)
    r = ingest(db, log)
    assert r.exit_code == 0, r.output
    assert "syslog, 2 events read, 3 skipped" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert [row["line"] for row in events(db)] == [1, 5]


def test_nothing_readable_is_exit_1_one_line(tmp_path):
    db = tmp_path / "w.db"
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 64)
    trunc = tmp_path / "cut.evtx"
    trunc.write_bytes(b"ElfFile\x00" + b"\x00" * 100)  # an evtx header cut short
    r = ingest(db, junk, trunc)
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, lines  # one line, naming each file and why
    assert lines[0].startswith(f"Error: nothing could be read from 2 file(s): {junk}: unknown, 65 skipped (not a log "
                               f"format this version reads"), lines
    assert f"; {trunc}: evtx, " in lines[0]
    assert "Traceback" not in r.output
    missing = ingest(db, tmp_path / "nope.log")
    assert missing.exit_code == 1 and "No such file" in missing.stderr


def _record(system: dict, data: dict) -> dict:
    return {"Event": {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
                      "System": system, "EventData": data}}


def _system(eid, channel="Security", qualifiers=False):
    return {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing"}},
            "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": eid} if qualifiers else eid,
            "TimeCreated": {"#attributes": {"SystemTime": "2026-01-02T03:04:05.250000Z"}},
            "EventRecordID": 9, "Channel": channel, "Computer": "dc1.corp.example"}


def test_evtx_records_mapped():
    logon = to_event(9, flatten(_record(_system(4624), {
        "TargetUserName": "alice", "TargetDomainName": "CORP", "LogonType": 3, "IpAddress": "::ffff:192.0.2.10",
        "IpPort": "50123", "WorkstationName": "WS7"})))
    assert (logon.ts_ns, logon.host, logon.account, logon.src_ip, logon.src_port, logon.action, logon.outcome) == \
        (ns("2026-01-02T03:04:05Z") + 250_000_000, "dc1.corp.example", "alice", "192.0.2.10", 50123, "logon", "success")
    assert logon.fields["LogonType"] == 3 and logon.fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    failed = to_event(10, flatten(_record(_system(4625), {"TargetUserName": "bob", "IpAddress": "-", "IpPort": "-"})))
    assert (failed.outcome, failed.src_ip, failed.src_port) == ("failure", None, None)
    service = to_event(11, flatten(_record(_system(7045, "System", qualifiers=True),
                                           {"ServiceName": "evil", "ImagePath": "C:\\x.exe"})))
    assert (service.fields["EventID"], service.action) == (7045, "service installed")
    proc = to_event(13, flatten(_record(_system(4688), {"SubjectUserName": "svc_web", "TargetUserName": "-",
                                                        "NewProcessName": "C:\\Windows\\System32\\cmd.exe"})))
    assert (proc.account, proc.action, proc.fields["NewProcessName"]) == \
        ("svc_web", "process created", "C:\\Windows\\System32\\cmd.exe")
    ntlm = to_event(12, flatten(_record(_system(4776), {"TargetUserName": "carol", "Status": "0xc000006a"})))
    assert (ntlm.action, ntlm.outcome) == ("NTLM credential validation", "failure")


@pytest.mark.parametrize("mod", ["sigma", "evtx"])
def test_help_does_not_import_heavy_libraries(mod):
    import subprocess
    import sys

    code = ("import sys; from click.testing import CliRunner; from analysis.cli import main; "
            "r = CliRunner().invoke(main, ['logs', '--help']); assert r.exit_code == 0; "
            f"print(any(m == '{mod}' or m.startswith('{mod}.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ}).stdout.strip()
    assert out == "False"


def test_utc_default():
    assert datetime(2027, 1, 1, tzinfo=UTC).timestamp() == 1798761600


def test_same_file_twice_is_skipped(tmp_path):
    db = tmp_path / "w.db"
    log = write(tmp_path / "auth.log", AUTH[:3], mtime="2027-01-01T00:05:00+00:00")
    assert ingest(db, log).exit_code == 0
    copy = tmp_path / "auth.log.copy"
    copy.write_bytes(log.read_bytes())
    r = ingest(db, copy)
    assert r.exit_code == 0, r.output
    assert f"{copy}: skipped, already in the store (same SHA-256 as {log})" in r.stderr
    assert len(events(db)) == 3


def test_large_load_settings_restored(tmp_path):
    """A load into an empty table runs with its indexes deferred, no foreign-key check and no
    WAL checkpoints; afterwards the connection has the store's settings again and every index."""
    from analysis.logs.ingest import Options, ingest_file
    from recorder.core.store import Store

    log = write(tmp_path / "auth.log", AUTH * 20, mtime="2027-01-01T00:05:00+00:00")
    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()
    s = ingest_file(store, str(log), Options())
    assert s.events == 12 * 20 and s.skipped == 20
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        names = {r[0] for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'log_events'")}
    assert len(names) == 5, names
    store.close()


def test_large_load_drops_only_the_unordered_indexes(tmp_path):
    """For a large load only the indexes whose keys arrive in no order (address, account) are
    dropped; those whose keys arrive in order (time, source, uid) stay and take the rows live."""
    from analysis.logs import store as log_store
    from recorder.core.store import Store

    store = Store(str(tmp_path / "w.db"))
    store.ensure_schema()

    def indexed() -> set[str]:
        with store.engine.connect() as conn:
            return {r[0] for r in conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'log_events'")}

    with store.engine.connect() as conn, log_store._loading(store, conn, 1_000):  # noqa: SLF001
        during = indexed()
    assert {s.split("(")[1].rstrip(")") for s in during} == {"ts_ns", "source_id", "uid"}
    assert len(indexed()) == 5
    store.close()
