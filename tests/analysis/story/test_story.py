"""The breach story on scapy-built captures (``scenes``), replayed with the shipped rules: the
whole story is asserted -- attackers, patient zero, stages in order with their times, the insider,
accounts to reset with the administrator first, card numbers counted and never printed whole,
bytes that left and where to, one brute-force finding instead of one alert per attempt."""

from __future__ import annotations

import hashlib
import json

import pytest
from click.testing import CliRunner

from analysis.cli import main
from analysis.replay import replay_captures
from analysis.story.build import build_story
from analysis.story.data import luhn, mask, scan
from analysis.story.model import STAGE_ORDER
from analysis.story.timeline import build_timeline
from recorder.core.errors import WiretrailError
from recorder.core.store import Store
from tests.analysis.behaviour.traffic import T0, Capture
from tests.analysis.story import scenes

NS = 1_000_000_000


def at(seconds: float) -> int:
    return round((T0 + seconds) * NS)


def _replay(tmp_path_factory, name: str) -> str:
    d = tmp_path_factory.mktemp(name)
    cap = Capture()
    getattr(scenes, name)(cap)
    db = str(d / "s.db")
    replay_captures([cap.write(d / f"{name}.pcap")], db=db)
    return db


@pytest.fixture(scope="module")
def breach_db(tmp_path_factory):
    return _replay(tmp_path_factory, "breach")


@pytest.fixture(scope="module")
def breach(breach_db):
    with Store(breach_db) as store:
        return build_story(store)


def test_breach_incident(breach):
    assert len(breach.incidents) == 1
    inc = breach.incidents[0]
    assert inc.attackers[0].address == scenes.ATTACKER and not inc.attackers[0].internal
    assert inc.attackers[0].names == ("dl.evil.example",)  # the Host it was reached by
    assert scenes.C2 in [a.address for a in inc.attackers]
    assert not inc.insider and inc.severity == 1 and inc.confidence == "high"
    assert inc.patient_zero == scenes.WEB
    assert "logged in to it over FTP as 'webmaster' after 8 failed tries" in inc.patient_zero_reason
    assert set(inc.victims) == {scenes.WEB, scenes.FILESERVER}
    assert {scenes.ATTACKER, scenes.WEB, scenes.FILESERVER, scenes.C2, scenes.DROP} <= set(inc.hosts)
    stages = {s.name: s for s in inc.stages}
    assert [s.name for s in inc.stages] == sorted(stages, key=STAGE_ORDER.index)
    assert list(stages) == ["reconnaissance", "initial-access", "execution", "credential-access",
                            "lateral-movement", "command-and-control", "exfiltration"]
    assert stages["reconnaissance"].first_ts_ns == at(0)
    assert stages["credential-access"].first_ts_ns == at(60)
    assert stages["initial-access"].first_ts_ns == at(80.06)  # the accepted login, before the exploit at 120
    assert stages["command-and-control"].first_ts_ns == at(150)  # download and callback
    assert stages["command-and-control"].last_ts_ns >= at(300 + 29 * 60)  # beacons until the last
    assert stages["lateral-movement"].first_ts_ns == at(220.06)
    assert "T1570 Lateral Tool Transfer" in stages["lateral-movement"].techniques  # svc.exe over SMB
    assert "T1569.002 System Services - Service Execution" in stages["lateral-movement"].techniques  # PsExec-like
    assert "Bind shell" in stages["execution"].summary and stages["execution"].first_ts_ns == at(160.04)
    assert stages["exfiltration"].first_ts_ns == at(400)
    assert all(s.evidence and s.evidence[0].capture_sha256 for s in inc.stages)
    # exfiltration: from the file server to the drop, with the file's name from the URL
    (ex,) = inc.exfiltration
    assert (ex.host, ex.destination, ex.encrypted, ex.files) == (scenes.FILESERVER, scenes.DROP, False,
                                                                ("customers.csv",))
    assert ex.bytes > len(scenes.customers_csv())
    assert set(inc.accounts) == {"administrator", "webmaster"}
    # the story: sentences in time order, each with evidence; brute force is one finding with a count
    assert all(s.evidence for s in inc.story)
    times = [s.evidence[0].ts_ns for s in inc.story[2:]]
    assert times == sorted(times)  # after who and patient zero, in time order
    text = "\n".join(s.text for s in inc.story)
    assert text.count("Brute force login") == 1
    assert text.count("Cleartext credentials: FTP login for 'webmaster' sent in clear text 9 times "
                      "(1 accepted, 8 refused)") == 1
    assert "30 payment card number(s) in customers.csv left the network" in text


def test_breach_ids_are_deterministic(breach_db, breach):
    with Store(breach_db) as store:
        again = build_story(store)
    assert [i.id for i in again.incidents] == [i.id for i in breach.incidents]
    assert again.incidents[0].story == breach.incidents[0].story


def test_breach_accounts_admin_first(breach):
    names = [a.name for a in breach.accounts if a.reset]
    assert names == ["administrator", "webmaster"]
    admin, web = breach.accounts[0], breach.accounts[1]
    assert admin.admin and admin.exposed and admin.used_by_attacker and not admin.brute_forced
    assert web.brute_forced and web.used_by_attacker and not web.admin
    assert (web.failures, web.successes) == (8, 1)
    assert admin.reasons[0].startswith("administrator account")
    dumped = json.dumps([a.reasons for a in breach.accounts])
    assert scenes.ADMIN_PASSWORD.decode() not in dumped and "letmein" not in dumped


def test_breach_data_at_risk(breach):
    by_kind = {d.kind: d for d in breach.data_at_risk}
    card = by_kind["card"]
    assert card.count == 30  # the Luhn-invalid number is not counted
    assert (card.src, card.dst, card.file, card.left_network, card.after_compromise) == (
        scenes.FILESERVER, scenes.DROP, "customers.csv", True, True)
    assert card.samples[0] == "4111 **** **** 1111"
    assert by_kind["email"].count == 30 and by_kind["db_dump"].count >= 30
    dump = by_kind["password_hashes"]  # the SQL injection's answer: 12 accounts with their hashes
    assert (dump.count, dump.src, dump.dst, dump.left_network) == (12, scenes.WEB, scenes.ATTACKER, True)
    assert dump.samples[0] == "user0 (hash hidden)"
    whole = json.dumps(breach.to_dict())
    assert "5f4dcc3b" not in whole and hashlib.md5(b"pw0").hexdigest() not in whole
    assert not any(c in whole for c in scenes.CARDS)
    assert "alice0@example.com" not in whole


def test_timeline_collapses_and_tags(breach_db, breach):
    with Store(breach_db) as store:
        events = build_timeline(store)
        alerts = [e for e in events if e.kind == "alert"]
        assert [e.ts_ns for e in events] == sorted(e.ts_ns for e in events)
        clear = [e for e in alerts if "'webmaster' sent in clear text" in e.description]
        assert len(clear) == 1 and "9 times (1 accepted, 8 refused)" in clear[0].description  # one alert
        refused = [e for e in events if e.kind == "credential" and "webmaster" in e.description
                   and "refused" in e.description]
        assert len(refused) == 1 and refused[0].count == 8  # the records collapsed: one row, 8 like it
        assert all(e.incident == breach.incidents[0].id for e in alerts if e.src == scenes.ATTACKER)
        # the web server's first contacts (the attacker, the control server) are one row for the hour
        first = [e for e in events if e.kind == "flow" and e.src == scenes.WEB]
        assert len(first) == 1 and first[0].count == 2 and "2 external address(es)" in first[0].description
        every = [e for e in build_timeline(store, collapse=False) if e.kind == "flow" and e.src == scenes.WEB]
        assert sorted(e.dst for e in every) == [scenes.C2, scenes.ATTACKER]
        only = build_timeline(store, incident=breach.incidents[0].id, min_severity=1)
        assert only and all(e.severity == 1 for e in only)
        host = build_timeline(store, host="10.0.0.20/32")
        assert host and all("10.0.0.20" in (e.src, e.dst) for e in host)
        with pytest.raises(WiretrailError, match="no incident INC-000000"):
            build_timeline(store, incident="INC-000000")


@pytest.fixture(scope="module")
def insider_db(tmp_path_factory):
    return _replay(tmp_path_factory, "insider")


def test_insider(insider_db):
    with Store(insider_db) as store:
        story = build_story(store)
    (inc,) = story.incidents
    assert inc.insider and inc.attackers[0].address == scenes.INSIDER and inc.attackers[0].internal
    assert inc.patient_zero == scenes.INSIDER
    # the insider's own machine was not "taken over": the story says someone or something on it acted
    said = [sentence.text for sentence in inc.story]
    assert f"It starts on {scenes.INSIDER} itself, a computer inside the network" in said[1]
    assert not any("Patient zero" in text for text in said)
    assert [s.name for s in inc.stages] == ["initial-access", "discovery", "lateral-movement", "collection",
                                            "exfiltration"]
    stages = {s.name: s for s in inc.stages}
    assert "'CORP\\bob' logged in from 10.0.0.9 and from 10.0.0.8" in stages["initial-access"].summary
    assert stages["collection"].first_ts_ns >= at(1030) and "read 30 files" in stages["collection"].summary
    # Bob's account: seen over NTLM (no password on the wire), used by the insider: reset it
    (bob,) = story.accounts
    assert bob.name == "CORP\\bob" and bob.used_by_attacker and not bob.exposed and bob.reset
    assert any("account seen (NTLM)" in r for r in bob.reasons)
    # what the insider read in clear text: IBANs and SSN-like numbers, inside the network, masked
    inside = {d.kind: d for d in story.data_at_risk if not d.left_network}
    assert inside["iban"].count == 12 and inside["ssn"].count == 12 and inside["iban"].file == "finance\\payroll.csv"
    assert inside["ssn"].samples[0] == "***-**-6780" and (inside["ssn"].src, inside["ssn"].dst) == (
        scenes.FILESERVER, scenes.INSIDER)
    (ex,) = inc.exfiltration
    assert (ex.destination, ex.bytes, ex.encrypted) == (scenes.INSIDER_DEST, 3_000_000, True)
    (enc,) = [d for d in story.data_at_risk if d.kind == "encrypted"]
    assert enc.count == 3_000_000 and enc.dst == scenes.INSIDER_DEST


@pytest.fixture(scope="module")
def ftp_db(tmp_path_factory):
    return _replay(tmp_path_factory, "ftp_brute")


def test_ftp_brute_force_is_one_finding(ftp_db):
    with Store(ftp_db) as store:
        story = build_story(store)
        events = build_timeline(store)
    (inc,) = story.incidents
    assert inc.patient_zero == scenes.FTP_SERVER and inc.attackers[0].address == scenes.FTP_ATTACKER
    assert "after 60 failed tries" in inc.patient_zero_reason
    brute = [e for e in events if e.kind == "alert" and e.description.startswith("Brute force")]
    assert len(brute) == 1
    (clear,) = [e for e in events if e.kind == "alert" and e.description.startswith("Cleartext credentials")]
    assert clear.description.endswith("'ftpadmin' sent in clear text 61 times (1 accepted, 60 refused)")
    (acc,) = story.accounts
    assert acc.name == "ftpadmin" and acc.brute_forced and acc.used_by_attacker and acc.admin
    assert (acc.failures, acc.successes) == (60, 1)


def test_scan_masks_and_checks():
    assert luhn("4111111111111111") and not luhn("4111111111111112")
    hits = scan(b"card 4111 1111 1111 1111, iban DE89 3704 0044 0532 0130 00, ssn 123-45-6789, x@y.org")
    assert hits["card"] == (1, ("4111 **** **** 1111",))
    assert hits["iban"][0] == 1 and hits["ssn"] == (1, ("***-**-6789",))
    assert "db_dump" not in hits and "email" not in hits  # one address is a mail's own, not customer data
    assert scan(b" ".join(f"u{i}@example.com".encode() for i in range(5)))["email"][0] == 5
    assert scan(b"id 1234567812345670") == {}  # passes Luhn, but no card issuer starts with 1
    assert mask("email", "alice@example.com") == "a***@example.com"
    assert scan(b"order 4111111111111112 and 2024-05-01 12:00") == {}


def test_cli(breach_db, breach, tmp_path):
    r = CliRunner()
    inc = breach.incidents[0].id
    out = r.invoke(main, ["incidents", "--db", breach_db, "--format", "json"])
    assert out.exit_code == 0 and json.loads(out.output)[0]["id"] == inc
    out = r.invoke(main, ["incident", inc, "--db", breach_db])
    assert out.exit_code == 0 and "Patient zero is 10.0.0.10" in out.output and "[alert " in out.output
    out = r.invoke(main, ["accounts", "--db", breach_db, "--reset-list"])
    assert out.exit_code == 0 and out.output.splitlines()[0].startswith("1. administrator: administrator account")
    out = r.invoke(main, ["data-at-risk", "--db", breach_db, "--format", "csv"])
    assert out.exit_code == 0 and "4111 **** **** 1111" in out.output and "4111111111111111" not in out.output
    out = r.invoke(main, ["timeline", "--db", breach_db, "--format", "timesketch"])
    lines = [json.loads(line) for line in out.output.splitlines()]
    assert out.exit_code == 0 and all({"message", "datetime", "timestamp_desc"} <= set(d) for d in lines)
    out = r.invoke(main, ["timeline", "--db", breach_db, "--since", "2030-01-01"])
    assert out.exit_code == 1 and "nothing recorded between 2030-01-01T00:00:00.000000Z and the end" in out.output
    out = r.invoke(main, ["incident", "INC-000000", "--db", breach_db])
    assert out.exit_code == 1 and "no incident INC-000000" in out.output
    out = r.invoke(main, ["timeline", "--incident", "INC-000000", "--db", breach_db])
    assert out.exit_code == 1 and out.output == "Error: no incident INC-000000 (see wiretrail incidents)\n"
    empty = tmp_path / "empty.db"
    with Store(str(empty)) as store:
        store.ensure_schema()
    out = r.invoke(main, ["incidents", "--db", str(empty)])
    assert out.exit_code == 1 and "nothing recorded between the beginning and the end" in out.output


@pytest.mark.postgres
def test_breach_story_on_postgres(pg_url, breach, tmp_path):
    """The same store on PostgreSQL tells the same story (same ids, stages, accounts, data)."""
    from tests.helpers.postgres import pg_reset

    pg_reset(pg_url)
    cap = Capture()
    scenes.breach(cap)
    replay_captures([cap.write(tmp_path / "breach.pcap")], db=pg_url)
    with Store(pg_url) as store:
        story = build_story(store)
        events = build_timeline(store)
    assert [i.id for i in story.incidents] == [i.id for i in breach.incidents]
    inc, ref = story.incidents[0], breach.incidents[0]
    assert [(s.name, s.first_ts_ns, s.last_ts_ns, s.techniques) for s in inc.stages] == [
        (s.name, s.first_ts_ns, s.last_ts_ns, s.techniques) for s in ref.stages]
    assert (inc.patient_zero, inc.exfiltration[0].bytes) == (ref.patient_zero, ref.exfiltration[0].bytes)
    assert [(a.name, a.reset, a.admin) for a in story.accounts] == [(a.name, a.reset, a.admin) for a in breach.accounts]
    assert [(d.kind, d.count) for d in story.data_at_risk] == [(d.kind, d.count) for d in breach.data_at_risk]
    assert any(e.kind == "credential" and e.count == 8 for e in events)


def test_thousands_of_alerts_give_a_short_incident_list(tmp_path):
    """4,000 scan alerts from 200 Internet addresses plus one real intrusion: the intrusion first,
    the scanners as one background incident, every repeated alert one finding with its count."""
    from analysis.alerts import Alert
    from analysis.replay import alert_row

    def alert(ts, sid, name, src, dst, sev, tactic, kind):
        return alert_row(Alert(ts_ns=at(ts), signature_id=sid, signature=f"{name}: {src} -> {dst}", severity=sev,
                               src_ip=src, dest_ip=dst, tactic=tactic, rule_kind=kind), "behaviour", None)

    rows = []
    for i in range(200):
        for k in range(20):
            rows.append(alert(i + k * 0.001, 9000001, "Port scan", f"198.51.100.{i % 250}" if i < 100 else
                              f"203.0.113.{i - 100}", f"10.0.0.{1 + i % 5}", 2, "TA0007 Discovery", "port_scan"))
    rows.append(alert(500, 9000003, "Brute force login", "192.0.2.9", "10.0.0.3", 1, "TA0006 Credential Access",
                      "brute_force"))
    rows.append(alert(600, 9000010, "Callback to attacker", "10.0.0.3", "192.0.2.9", 1,
                      "TA0011 Command and Control", "callback"))
    with Store(str(tmp_path / "many.db")) as store:
        store.ensure_schema()
        assert store.add_alerts(rows) == 4002
        story = build_story(store)
        events = build_timeline(store)
    assert len(story.incidents) == 2
    first, background = story.incidents
    assert first.attackers[0].address == "192.0.2.9" and first.patient_zero == "10.0.0.3"
    assert background.title == "Background scanning from 200 outside addresses" and background.alert_count == 4000
    assert len(events) == 202 and {e.count for e in events if e.description.startswith("Port scan")} == {20}


@pytest.mark.parametrize("command", ["timeline", "incidents", "accounts", "data-at-risk"])
def test_an_old_database_is_refused_in_one_line(tmp_path, command):
    from alembic import command as alembic

    from recorder.core.store import SCHEMA_HEAD

    store = Store(str(tmp_path / "old.db"))
    with store.engine.begin() as conn:
        alembic.upgrade(store._alembic_config(conn), "0003")
    store.close()
    out = CliRunner().invoke(main, [command, "--db", str(tmp_path / "old.db")])
    assert out.exit_code == 1
    assert out.output.strip().splitlines() == [
        f"Error: {tmp_path / 'old.db'}: schema revision 0003, this version needs {SCHEMA_HEAD}; run wiretrail db migrate"]


@pytest.mark.postgres
def test_insider_story_on_postgres(pg_url, insider_db, tmp_path):
    """The insider rules (SQL with integer hours and a self-join) and story agree on PostgreSQL."""
    from tests.helpers.postgres import pg_reset

    pg_reset(pg_url)
    cap = Capture()
    scenes.insider(cap)
    out = replay_captures([cap.write(tmp_path / "insider.pcap")], db=pg_url)
    assert {"share_read", "shared_account", "large_upload", "host_sweep"} <= {a.rule_kind for a in out.alerts}
    with Store(pg_url) as store, Store(insider_db) as ref:
        story, expected = build_story(store), build_story(ref)
    assert [(s.name, s.first_ts_ns) for s in story.incidents[0].stages] == [
        (s.name, s.first_ts_ns) for s in expected.incidents[0].stages]
    assert [(d.kind, d.count) for d in story.data_at_risk] == [(d.kind, d.count) for d in expected.data_at_risk]


def test_ongoing_means_active_in_the_last_tenth(breach, breach_db):
    from analysis.story.common import Scope
    from analysis.story.findings import load_findings
    from analysis.story.incidents import build_incidents

    # the breach's beacons last until 10:34, the end of what was recorded: still going on
    assert breach.incidents[0].ongoing
    with Store(breach_db) as store:
        scope = Scope.open(store)
        later = build_incidents(scope, load_findings(scope), (at(-1200), at(20_000)))  # had the store gone on
    assert [i.id for i in later] == [breach.incidents[0].id] and not later[0].ongoing


def test_repeated_signature_alerts_on_one_flow_are_one_stored_alert_with_a_count(tmp_path):
    from tests.analysis.behaviour.traffic import http_get

    cap = Capture()
    # three identical requests for /etc/passwd on one keep-alive connection: three alerts in the EVE
    # output (as Suricata gives), one row in the store with the count in its EVE metadata
    cap.session(T0, "203.0.113.9", "10.0.0.20", 41000, 80, http_get("10.0.0.20", "/x?f=../../etc/passwd") * 3)
    cap.session(T0 + 10, "203.0.113.9", "10.0.0.20", 41001, 80, http_get("10.0.0.20", "/y?f=/etc/passwd"))
    db = str(tmp_path / "r.db")
    outcome = replay_captures([cap.write(tmp_path / "r.pcap")], db=db)
    sigs = [a for a in outcome.alerts if a.signature_id == 9100004]
    assert len(sigs) == 4 and outcome.repeats == 2
    with Store(db) as store:
        rows = [r for r in store.query_alerts() if r["signature_id"] == 9100004]
    assert len(rows) == 2
    counts = sorted((json.loads(r["eve"]) if isinstance(r["eve"], str) else r["eve"])["alert"]["metadata"]
                    .get("wiretrail_count", ["1"])[0] for r in rows)
    assert counts == ["1", "3"]
    r = CliRunner().invoke(main, ["replay", "--db", str(tmp_path / "again.db"), str(tmp_path / "r.pcap")])
    assert r.exit_code == 0 and "2 repeats on one flow stored as counts" in r.output


def test_log_evidence_in_the_story(tmp_path):
    """sshd's failed and accepted logins (an auth log, joined to the SSH connections) and a sudo
    line: the timeline shows them (kind "log"), the Sigma alert on them feeds the incident with
    the SSH server as its victim, and the accounts list has root brute-forced and deploy an admin."""
    import os
    from datetime import UTC, datetime

    from tests.analysis.behaviour.traffic import SSH_BANNERS

    def stamp(offset: float) -> str:
        return datetime.fromtimestamp(T0 + offset, UTC).strftime("%b %e %H:%M:%S")

    cap, lines = Capture(), []
    for i in range(13):  # thirteen SSH connections: twelve refused passwords, then one accepted
        cap.session(10 + i * 5, "198.51.100.7", "10.0.0.5", 41000 + i, 22, SSH_BANNERS)
        verdict = "Accepted" if i == 12 else "Failed"
        lines.append(f"{stamp(10.5 + i * 5)} srv sshd[{100 + i}]: {verdict} password for root from 198.51.100.7 "
                     f"port {41000 + i} ssh2")
    lines.append(f"{stamp(90)} srv sshd[300]: Accepted publickey for deploy from 10.0.0.8 port 50000 ssh2")
    lines.append(f"{stamp(95)} srv sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/bin/bash")
    db = str(tmp_path / "l.db")
    replay_captures([cap.write(tmp_path / "l.pcap")], db=db)
    auth = tmp_path / "auth.log"
    auth.write_text("\n".join(lines) + "\n")
    os.utime(auth, (T0 + 600, T0 + 600))
    runner = CliRunner()
    assert runner.invoke(main, ["logs", "ingest", "--db", db, str(auth)]).exit_code == 0
    r = runner.invoke(main, ["logs", "detect", "--db", db])
    assert r.exit_code == 0, r.output
    with Store(db) as store:
        story = build_story(store)
        events = build_timeline(store)
    logs = [e for e in events if e.kind == "log"]
    failed = next(e for e in logs if "(failure)" in e.description)
    assert failed.count == 12 and failed.src == "198.51.100.7" and failed.dst == "10.0.0.5"
    assert failed.description == "sshd log: login (failure) for account root from 198.51.100.7 on srv"
    assert any("(success) for account root" in e.description for e in logs)
    assert [e for e in events if e.kind == "alert" and e.dst == "10.0.0.5"]  # the Sigma alert, its server found
    inc = next(i for i in story.incidents if i.attackers[0].address == "198.51.100.7")
    assert "10.0.0.5" in inc.victims
    accounts = {a.name: a for a in story.accounts}
    root = accounts["root"]
    assert root.brute_forced and root.admin and (root.failures, root.successes) == (12, 1)
    assert root.protocols == ("SSH (auth log)",) and root.evidence[0].kind == "log"
    deploy = accounts["deploy"]  # logged in with a key, then sudo: an administrator, nothing to reset
    assert deploy.admin and "ran sudo (auth log)" in deploy.reasons[0] and not deploy.reset
