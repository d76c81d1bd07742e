"""`wiretrail replay` storing alerts (tagged with their capture), --var, --expect, signatures
matched in the ingest's pass, and `wiretrail alerts` with its filters and
formats, on SQLite and PostgreSQL, over captures built with the behaviour tests' traffic builders."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from analysis.alerts import Alert
from analysis.cli import main
from analysis.replay import SHIPPED_RULES
from tests.analysis.behaviour.traffic import (
    BRUTE,
    CLEARTEXT,
    SCAN,
    SWEEP,
    T0,
    Capture,
    build_captures,
    ftp_login,
)

NS = 1_000_000_000
@pytest.fixture(scope="module")
def pcaps(tmp_path_factory):
    return build_captures(tmp_path_factory.mktemp("alerts"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def replayed(db_url, pcaps, tmp_path):
    """Both captures replayed into db_url with the shipped behaviour rules; (db, eve lines)."""
    eve = tmp_path / "eve.json"
    r = run("replay", *pcaps, "--db", db_url, "--eve", eve, "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert "20 behaviour rules, 9 alerts (9 new in the store)" in r.stderr
    return db_url, eve.read_text().splitlines()


# --- replay -> store ------------------------------------------------------------------------------------

def test_replay_stores_alerts_tagged_with_their_capture(replayed, pcaps):
    db, eve = replayed
    rows = jsonl(run("alerts", "--db", db, "--format", "jsonl").stdout)
    assert [r["sid"] for r in rows] == [SCAN, SWEEP, BRUTE] + [CLEARTEXT] * 6
    caps = {c["path"]: c["id"] for c in jsonl(run("captures", "--db", db, "--format", "jsonl").stdout)}
    a, b = caps[pcaps[0]], caps[pcaps[1]]
    assert [r["capture_id"] for r in rows] == [a] + [b] * 8
    assert all(r["kind"] == "behaviour" for r in rows)
    assert rows[2]["app_proto"] == "ftp" and rows[2]["severity"] == 1 and rows[2]["tactic"] == "TA0006 Credential Access"
    # the EVE lines stored are the ones replay wrote
    assert run("alerts", "--db", db, "--format", "eve").stdout.splitlines() == eve
    # every stored alert's uid is a flow of its capture
    flows = {f["uid"] for f in jsonl(run("flows", "--db", db, "--format", "jsonl").stdout)}
    assert {r["uid"] for r in rows} <= flows


def test_replay_again_adds_no_duplicates(replayed, pcaps):
    db, _ = replayed
    r = run("replay", pcaps[1], "--db", db)  # already ingested; the behaviour rules see the whole store
    assert r.exit_code == 0, r.output
    assert "0 packets, 0 flows, 5 signatures, 20 behaviour rules, 9 alerts (0 new in the store)" in r.stderr
    assert len(run("alerts", "--db", db, "--format", "jsonl").stdout.splitlines()) == 9


def test_replay_into_a_temporary_store_keeps_nothing(pcaps, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run("replay", pcaps[0], "--format", "json")
    assert r.exit_code == 0, r.output
    assert [e["alert"]["signature_id"] for e in json.loads(r.stdout)] == [SCAN]
    assert "(" not in r.stderr.splitlines()[-1]  # no "new in the store" without --db
    assert list(tmp_path.iterdir()) == []


# --- wiretrail alerts ------------------------------------------------------------------------------------

def test_alerts_filters(replayed):
    db, _ = replayed

    def sids(*args):
        r = run("alerts", "--db", db, "--format", "jsonl", *args)
        assert r.exit_code == 0, r.output
        return [x["sid"] for x in jsonl(r.stdout)]

    assert sids("--sid", SCAN) == [SCAN]
    assert sids("--sid", f"{SCAN},{BRUTE}") == [SCAN, BRUTE]
    assert sids("--sid", SCAN, "--sid", SWEEP) == [SCAN, SWEEP]
    assert sids("--severity", 1) == [BRUTE]
    assert sids("--severity", 2) == [SCAN, SWEEP, BRUTE] + [CLEARTEXT] * 6
    assert sids("--signature", "PORT SCAN") == [SCAN]
    assert sids("--host", "10.0.0.66") == [SCAN]
    assert sids("--host", "10.0.1.0/24") == [SWEEP]
    assert sids("--port", 21, "--limit", 3) == [BRUTE, CLEARTEXT, CLEARTEXT]
    assert sids("--proto", "tcp", "--since", "2024-05-01T10:01:00Z", "--until", T0 + 200) == [SWEEP]
    assert sids("--kind", "signature") == []
    assert sids("--kind", "behaviour", "--sid", SCAN) == [SCAN]
    [scan] = jsonl(run("alerts", "--db", db, "--format", "jsonl", "--sid", SCAN).stdout)
    assert sids("--uid", scan["uid"]) == [SCAN]
    assert sids("--capture", scan["capture_id"]) == [SCAN]
    assert sids("--capture", 99) == []


def test_alerts_formats(replayed):
    db, eve = replayed
    r = run("alerts", "--db", db, "--sid", SCAN)
    assert r.exit_code == 0
    header, row = r.stdout.splitlines()[0], r.stdout.splitlines()[2]
    assert header.split()[:4] == ["ts", "┃", "sid", "┃"]
    assert "2024-05-01T10:00:00.000000Z" in row and "Port scan: 10.0.0.66 probed 40 tcp ports" in row
    rows = list(csv.DictReader(io.StringIO(run("alerts", "--db", db, "--format", "csv").stdout)))
    assert len(rows) == 9 and rows[0]["ts"] == "2024-05-01T10:00:00.000000Z" and rows[0]["kind"] == "behaviour"
    assert rows[0]["src_port"] == "40000" and rows[1]["app_proto"] == ""
    as_json = json.loads(run("alerts", "--db", db, "--format", "json").stdout)
    assert as_json == jsonl(run("alerts", "--db", db, "--format", "jsonl").stdout)
    assert as_json[0]["ts"] == T0 and "app_proto" not in as_json[0]
    lines = run("alerts", "--db", db, "--format", "eve", "--severity", 1).stdout.splitlines()
    assert lines == [x for x in eve if '"severity":1' in x] and len(lines) == 1
    assert json.loads(lines[0])["alert"]["signature_id"] == BRUTE


def test_alerts_help_and_usage_errors(tmp_path):
    r = run("alerts", "--help")
    assert r.exit_code == 0
    for option in ("--db", "--host", "--since", "--until", "--limit", "--sid", "--severity", "--signature",
                   "--kind", "--format [table|json|jsonl|csv|eve]"):
        assert option in r.stdout
    assert "alerts" in run("--help").stdout
    r = run("alerts", "--db", tmp_path / "x.db", "--sid", "abc")
    assert r.exit_code == 2 and "'abc' is not a signature id" in r.stderr
    r = run("alerts", "--db", tmp_path / "x.db", "--host", "10.0.0.300")
    assert r.exit_code == 2 and "is not an IP address or CIDR" in r.stderr
    r = run("alerts", "--db", tmp_path / "none.db")
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "no database at" in r.stderr


def test_alerts_on_an_old_database_asks_for_a_migration(tmp_path):
    from alembic import command

    from recorder.core.store import SCHEMA_HEAD, Store

    store = Store(str(tmp_path / "old.db"))
    with store.engine.begin() as conn:
        command.upgrade(store._alembic_config(conn), "0003")
    store.close()
    r = run("alerts", "--db", tmp_path / "old.db")
    assert r.exit_code == 1 and f"schema revision 0003, this version needs {SCHEMA_HEAD}" in r.stderr


# --- --expect ---------------------------------------------------------------------------------------------

def test_expect_holds(pcaps, tmp_path):
    exp = tmp_path / "expect.yaml"
    exp.write_text(f"only: true\nalerts:\n  - sid: {SCAN}\n    count: 1\n    src_ip: 10.0.0.66\n"
                   f"  - sid: {SWEEP}\n    dest_port: 445\n  - {BRUTE}\n  - sid: {CLEARTEXT}\n    count: 6\n")
    r = run("replay", *pcaps, "--expect", exp, "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert f"{exp}: 4 expectation(s) hold" in r.stderr.splitlines()


def test_expect_differs_exit_3_with_one_line_per_difference(pcaps, tmp_path):
    exp = tmp_path / "expect.yaml"
    exp.write_text(f"only: true\nalerts:\n  - sid: {SCAN}\n    count: 2\n  - sid: {SWEEP}\n    src_ip: 10.0.0.1\n"
                   f"  - sid: 9000005\n  - sid: {CLEARTEXT}\n")
    r = run("replay", *pcaps, "--expect", exp, "--format", "jsonl")
    assert r.exit_code == 3
    assert len(r.stdout.splitlines()) == 9  # the alerts are still printed
    assert r.stderr.splitlines()[-4:] == [
        f"{exp}:3: sid {SCAN}: expected exactly 2, got 1",
        f"{exp}:5: sid {SWEEP} src_ip=10.0.0.1: expected at least 1, got 0 (of 1 alerts with this sid)",
        f"{exp}:7: sid 9000005: expected at least 1, got 0",
        f"{exp}:1: sid {BRUTE} 'Brute force login: 10.0.0.99 -> 10.0.0.6:21: 6 failed FTP logins': "
        "expected none (only: true), got 1",
    ]


def test_bad_expect_file_exits_1_before_reading_captures(pcaps, tmp_path):
    exp = tmp_path / "expect.yaml"
    exp.write_text("alerts:\n  - sid: x\n  - port: 22\n")
    r = run("replay", *pcaps, "--expect", exp)
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {exp}:2: sid must be a whole number >= 1, not 'x'",
                                     f"{exp}:3: this entry has no sid",
                                     f"{exp}:3: unknown key 'port' (one of sid, count, gid, src_ip, src_port, "
                                     "dest_ip, dest_port, proto, app_proto, severity, signature)"]
    assert r.stdout == ""


# --- signatures: --var and the engine ---------------------------------------------------------------------

RULE = 'alert tcp $ATTACKERS any -> $HOME_NET 21 (msg:"ET TEST ftp guess"; flow:established,to_server; ' \
       'content:"PASS guess0"; sid:2000001; rev:2; classtype:attempted-recon; ' \
       'metadata: mitre_tactic_id TA0043, mitre_tactic_name Reconnaissance;)\n'


@pytest.fixture
def rules_file(tmp_path):
    f = tmp_path / "local.rules"
    f.write_text(RULE)
    return f


def test_signatures_match_in_the_ingest_pass_with_vars_and_merge_in_time_order(db_url, pcaps, rules_file):
    behaviour = SHIPPED_RULES / "behaviour"
    r = run("replay", *pcaps, "--db", db_url, "--rules", rules_file, "--rules", behaviour,
            "--var", "ATTACKERS=[10.0.0.99,10.0.0.66]", "--var", "HOME_NET=10.0.0.0/24", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert "1 signatures, 20 behaviour rules, 10 alerts (10 new in the store)" in r.stderr
    eve = jsonl(r.stdout)
    assert [e["alert"]["signature_id"] for e in eve] == [SCAN, SWEEP, BRUTE, 2000001] + [CLEARTEXT] * 6
    sig = eve[3]
    assert (sig["src_ip"], sig["src_port"], sig["dest_ip"], sig["dest_port"]) == ("10.0.0.99", 44000, "10.0.0.6", 21)
    assert (sig["app_proto"], sig["alert"]["category"]) == ("ftp", "Attempted Information Leak")
    flow = next(f for f in jsonl(run("flows", "--db", db_url, "--format", "jsonl").stdout) if f["id.orig_p"] == 44000)
    [stored] = jsonl(run("alerts", "--db", db_url, "--kind", "signature", "--format", "jsonl").stdout)
    caps = {c["path"]: c["id"] for c in jsonl(run("captures", "--db", db_url, "--format", "jsonl").stdout)}
    assert stored["capture_id"] == caps[pcaps[1]] and stored["uid"] == flow["uid"]  # the alert joins its flow
    assert (stored["proto"], stored["rev"], stored["tactic"]) == ("tcp", 2, "TA0043 Reconnaissance")
    assert run("alerts", "--db", db_url, "--format", "eve", "--kind", "signature").stdout.splitlines() == [
        json.dumps(sig, separators=(",", ":"))]

    # the captures are in the store now: the engine reads them itself, and finds the same
    r = run("replay", *pcaps, "--db", db_url, "--rules", rules_file, "--var", "ATTACKERS=10.0.0.99",
            "--var", "HOME_NET=10.0.0.0/24", "--format", "jsonl")
    assert r.exit_code == 0, r.output
    assert "1 signatures, 0 behaviour rules, 1 alerts (0 new in the store)" in r.stderr
    assert jsonl(r.stdout) == [sig]

    # the variables decide: the attacker is not in HOME_NET's reach, or not an attacker
    for home, attackers in (("10.0.1.0/24", "10.0.0.99"), ("10.0.0.0/24", "10.0.0.66")):
        r = run("replay", *pcaps, "--rules", rules_file, "--var", f"ATTACKERS={attackers}", "--var", f"HOME_NET={home}")
        assert r.exit_code == 0 and "1 signatures, 0 behaviour rules, 0 alerts" in r.stderr, r.output


def test_alert_without_a_uid_is_tagged_by_time(pcaps, tmp_path):
    from analysis.replay import alert_capture_ids
    from recorder.core.store import Store

    db = tmp_path / "t.db"
    assert run("replay", *pcaps, "--db", db, "--rules", SHIPPED_RULES / "behaviour").exit_code == 0
    with Store(str(db)) as store:
        caps = {c["path"]: c["id"] for c in store.captures()}
        alerts = [Alert(ts_ns=int(T0) * NS + t * NS, signature_id=1, signature="x", severity=3, src_ip="10.0.0.1",
                        dest_ip="10.0.0.2") for t in (150, 5000)]
        assert alert_capture_ids(store, alerts, list(caps.values())) == [caps[pcaps[1]], None]  # in b.pcap's span; in none


def test_rejected_signatures_and_bad_vars(pcaps, rules_file, tmp_path):
    db = tmp_path / "t.db"
    r = run("replay", pcaps[0], "--rules", rules_file, "--db", db)  # $ATTACKERS undefined
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"Error: {rules_file}:1: undefined address variable $ATTACKERS"]
    assert r.stdout == "" and not db.exists()  # before reading any capture
    r = run("replay", pcaps[0], "--rules", rules_file, "--var", "ATTACKERS")
    assert r.exit_code == 2 and "'ATTACKERS' is not NAME=VALUE" in r.stderr


def test_home_net_is_the_local_nets_plus_the_private_ranges(tmp_path):
    """A signature on $HOME_NET fires on a server in a --local-net public range, and not without
    it; an explicit --var HOME_NET still wins."""
    rules = tmp_path / "home.rules"
    rules.write_text('alert tcp $EXTERNAL_NET any -> $HOME_NET 21 (msg:"FTP to home"; flow:to_server,established; content:"USER"; sid:2000042; rev:1;)\n')
    cap = Capture()
    cap.session(0, "203.0.113.5", "198.51.100.20", 44000, 21, ftp_login(b"u", b"p", ok=True))
    pcap = cap.write(tmp_path / "home.pcap")

    def fired(*extra):
        r = run("replay", pcap, "--rules", rules, "--format", "jsonl", *extra)
        assert r.exit_code == 0, r.output
        return [e["alert"]["signature_id"] for e in jsonl(r.stdout)]

    assert fired() == []
    assert fired("--local-net", "198.51.100.0/24") == [2000042]
    assert fired("--local-net", "198.51.100.0/24", "--var", "HOME_NET=10.0.0.0/8") == []
