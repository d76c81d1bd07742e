"""Behaviour rules over tiny built captures: each rule fires on its capture and stays quiet on
ordinary traffic and on near misses; the rule file loader reports path:line; EVE format."""

from __future__ import annotations

import dataclasses
import json
import random
import re

import pytest

from analysis.alerts import Alert, eve_timestamp, flow_id, write_eve
from analysis.behaviour import evaluate, load_behaviour_rules
from analysis.replay import SHIPPED_RULES
from recorder.core.pipeline.ingest import ingest
from recorder.core.store import Store
from tests.analysis.behaviour.shipped import ERRORS as _ERRORS
from tests.analysis.behaviour.shipped import RULES, SID
from tests.analysis.behaviour.traffic import (
    SSH_BANNERS,
    Capture,
    ftp_login,
    http_get,
    normal_office,
    random_label,
)

ATTACKER, VICTIM = "10.0.0.66", "10.0.0.5"


def run(tmp_path, cap: Capture, rules=None) -> list[Alert]:
    path = cap.write(tmp_path / "c.pcap")
    with Store(str(tmp_path / "s.db")) as store:
        store.ensure_schema()
        ingest([path], store)
        return evaluate(store, RULES if rules is None else rules)


def sids(alerts: list[Alert]) -> list[int]:
    return sorted(a.signature_id for a in alerts)


def with_params(kind: str, **params):
    rule = next(r for r in RULES if r.kind == kind)
    return dataclasses.replace(rule, params={**rule.params, **params})


def test_shipped_rules_load():
    assert _ERRORS == []
    assert set(SID) == {"port_scan", "host_sweep", "brute_force", "long_connection", "dns_tunnelling", "beaconing",
                        "exfiltration", "cleartext_credentials", "lateral_movement", "callback",
                        "executable_download", "cleartext_admin", "large_upload", "share_read", "shared_account",
                        "bind_shell", "remote_service", "rpc_operation"}
    assert all(r.tactic.startswith("TA") and r.technique.startswith("T1") for r in RULES)


def test_ordinary_office_traffic_raises_nothing(tmp_path):
    cap = Capture()
    normal_office(cap, random.Random(7))
    assert run(tmp_path, cap) == []


# --- port scan / host sweep -----------------------------------------------------------------------

def test_port_scan_fires(tmp_path):
    cap = Capture()
    for i, port in enumerate(range(1, 101)):
        cap.rejected(i * 0.01, ATTACKER, VICTIM, 40000 + i, port)
    cap.session(1.5, ATTACKER, VICTIM, 41000, 80, [(b"", b"")])  # one open port among them
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["port_scan"]]
    a = alerts[0]
    assert (a.src_ip, a.dest_ip, a.proto, a.severity) == (ATTACKER, VICTIM, "tcp", 2)
    assert "probed 100 tcp ports on 10.0.0.5 (101 connections, 99% failed)" in a.signature


def test_port_scan_quiet_on_many_answered_ports_and_few_refused(tmp_path):
    cap = Capture()
    for i in range(30):  # a client using 30 services of one server, all answered
        cap.session(i, "10.0.0.7", "10.0.0.20", 45000 + i, 8000 + i)
    for i in range(10):  # and 10 refused ports: below min_ports
        cap.rejected(40 + i, ATTACKER, VICTIM, 40000 + i, 1 + i)
    assert run(tmp_path, cap) == []


def test_host_sweep_fires(tmp_path):
    cap = Capture()
    for i in range(30):
        cap.unanswered(i * 0.05, ATTACKER, f"10.0.1.{i + 1}", 42000 + i, 445)
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["host_sweep"]]
    assert alerts[0].dest_port == 445 and "30 hosts on tcp/445" in alerts[0].signature


def test_host_sweep_quiet_on_browsing_many_sites(tmp_path):
    cap = Capture()
    for i in range(30):
        cap.session(i * 2, "10.0.0.7", f"198.51.100.{i + 1}", 43000 + i, 443, http_get("site.example"))
    assert run(tmp_path, cap) == []


# --- brute force / credentials ---------------------------------------------------------------------

def test_brute_force_fires_on_failed_ftp_logins(tmp_path):
    cap = Capture()
    for i in range(6):
        cap.session(i * 2, ATTACKER, VICTIM, 44000 + i, 21, ftp_login(b"admin", f"guess{i}".encode(), ok=False))
    alerts = run(tmp_path, cap)
    brute = [a for a in alerts if a.signature_id == SID["brute_force"]]
    assert len(brute) == 1 and "6 failed FTP logins" in brute[0].signature
    assert brute[0].app_proto == "ftp" and brute[0].dest_port == 21
    # six wrong guesses and no success are the brute force's alone: no clear-text credential
    # alert per try (nor an administrator's password in clear text)
    assert sids(alerts) == [SID["brute_force"]]


def test_failed_logins_spread_over_hours_are_no_brute_force(tmp_path):
    # a user mistyping the FTP password once an hour, six times: never five within ten minutes;
    # the same six within eleven minutes but only four within any ten are no brute force either,
    # while the fifth inside the window makes one
    spread, almost, burst = Capture(), Capture(), Capture()
    for i in range(6):
        spread.session(i * 3600, ATTACKER, VICTIM, 44000 + i, 21, ftp_login(b"admin", b"typo", ok=False))
        almost.session((0, 200, 400, 600, 1210, 1400)[i], ATTACKER, VICTIM, 44000 + i, 21,
                       ftp_login(b"admin", b"typo", ok=False))
        burst.session((0, 200, 400, 590, 599, 5000)[i], ATTACKER, VICTIM, 44000 + i, 21,
                      ftp_login(b"admin", b"typo", ok=False))
    for name in ("spread", "almost", "burst"):
        (tmp_path / name).mkdir()
    assert SID["brute_force"] not in sids(run(tmp_path / "spread", spread))
    assert SID["brute_force"] not in sids(run(tmp_path / "almost", almost))
    brute = [a for a in run(tmp_path / "burst", burst) if a.signature_id == SID["brute_force"]]
    assert len(brute) == 1 and "6 failed FTP logins" in brute[0].signature  # the whole count


def test_brute_force_fires_on_http_401s(tmp_path):
    cap = Capture()
    for i in range(12):
        cap.session(i, ATTACKER, VICTIM, 44100 + i, 80, http_get("intranet", "/admin", status=b"401 Unauthorized"))
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["brute_force"]]
    assert "12 HTTP 401 responses" in alerts[0].signature


def test_brute_force_fires_on_many_short_ssh_connections(tmp_path):
    cap = Capture()
    for i in range(25):
        cap.session(i * 3, ATTACKER, VICTIM, 44200 + i, 22, SSH_BANNERS + [(b"k" * 100, b"denied")])
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["brute_force"]]
    assert "25 connections to ssh" in alerts[0].signature


def test_brute_force_quiet_on_a_typo_and_a_few_ssh_sessions(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", VICTIM, 44300, 21, ftp_login(b"bob", b"typo", ok=False))
    cap.session(5, "10.0.0.7", VICTIM, 44301, 21, ftp_login(b"bob", b"secret", ok=True))
    for i in range(5):
        cap.session(10 + i * 30, "10.0.0.7", VICTIM, 44310 + i, 22, SSH_BANNERS + [(b"k" * 300, b"k" * 300)])
    alerts = run(tmp_path, cap)
    # the FTP logins are in clear text: one alert for the account and pair, with the count; no brute force
    assert sids(alerts) == [SID["cleartext_credentials"]]
    assert alerts[0].signature.endswith("FTP login for 'bob' sent in clear text 2 times (1 accepted, 1 refused)")


def test_cleartext_credentials_fires_on_ftp_login(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", "198.51.100.9", 44400, 21, ftp_login(b"alice", b"s3cret", ok=True))
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["cleartext_credentials"]]
    assert "FTP login for 'alice'" in alerts[0].signature and "(accepted)" in alerts[0].signature
    assert "s3cret" not in alerts[0].signature


def test_cleartext_credentials_ignored_users(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", "198.51.100.9", 44400, 21, ftp_login(b"anonymous", b"me@example.com", ok=True))
    cap.session(5, "10.0.0.7", "198.51.100.9", 44401, 21, ftp_login(b"alice", b"pw", ok=True))
    alerts = run(tmp_path, cap, [with_params("cleartext_credentials", ignore_users=["anonymous"])])
    assert [a.signature for a in alerts] == ["Cleartext credentials: FTP login for 'alice' sent in clear text (accepted)"]


def test_cleartext_credentials_quiet_without_logins(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", "198.51.100.9", 44500, 80, http_get("www.example.com"))
    cap.session(1, "10.0.0.7", "198.51.100.9", 44501, 22, SSH_BANNERS)
    assert run(tmp_path, cap) == []


# --- long connections --------------------------------------------------------------------------------

def _keepalive_session(cap: Capture, minutes: int) -> None:
    # one exchange every 2 minutes keeps the connection under the 5-minute inactivity timeout
    cap.session(0, "10.0.0.7", "203.0.113.5", 44600, 443, [(b"ping", b"pong")] * (minutes // 2), gap=60)


def test_long_connection_fires(tmp_path):
    cap = Capture()
    _keepalive_session(cap, 70)
    alerts = run(tmp_path, cap, [r for r in RULES if r.kind == "long_connection"])
    assert sids(alerts) == [SID["long_connection"]]
    assert alerts[0].dest_port == 443 and re.search(r"open for 1\.\d\d h$", alerts[0].signature)


def test_long_connection_quiet_below_threshold(tmp_path):
    cap = Capture()
    _keepalive_session(cap, 50)
    assert run(tmp_path, cap) == []


# --- DNS tunnelling -----------------------------------------------------------------------------------

def test_dns_tunnelling_fires(tmp_path):
    rng = random.Random(3)
    cap = Capture()
    for i in range(60):
        cap.dns(i * 0.5, "10.0.0.7", "10.0.0.53", f"{random_label(rng, 40)}.{random_label(rng, 8)}.t.evil.example",
                qtype="TXT", sport=30000 + i, qid=i + 1)
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["dns_tunnelling"]]
    text = alerts[0].signature
    assert "60 unique subdomains of evil.example" in text and "60 TXT queries" in text and "entropy" in text
    assert alerts[0].app_proto == "dns" and alerts[0].dest_port == 53


def test_dns_tunnelling_quiet_on_many_plain_hostnames(tmp_path):
    cap = Capture()
    for i in range(60):  # an inventory script resolving host1..host60: many subdomains, but plain
        cap.dns(i * 0.5, "10.0.0.7", "10.0.0.53", f"host{i + 1}.corp.example.com", sport=30000 + i, qid=i + 1)
    assert run(tmp_path, cap) == []


# --- beaconing ------------------------------------------------------------------------------------------

def test_beaconing_fires_with_subscores(tmp_path):
    rng = random.Random(5)
    cap = Capture()
    for i in range(30):
        cap.session(i * 60 + rng.uniform(-0.3, 0.3), "10.0.0.7", "203.0.113.77", 46000 + i, 8443,
                    [(b"b" * 220, b"c" * 40)])
    alerts = run(tmp_path, cap)
    assert sids(alerts) == [SID["beaconing"]]
    m = re.search(r"score (\S+) \(interval (\S+), size (\S+), count (\S+);", alerts[0].signature)
    assert m, alerts[0].signature
    score, interval, size, count = map(float, m.groups())
    assert interval > 0.95 and size == 1.0 and count == pytest.approx(0.6) and score >= 0.8
    assert "30 connections every 60.0 s" in alerts[0].signature


def test_beaconing_quiet_on_irregular_use(tmp_path):
    rng = random.Random(6)
    cap = Capture()
    t = 0.0
    for i in range(30):
        cap.session(t, "10.0.0.7", "203.0.113.77", 46100 + i, 8443, [(b"b" * rng.randrange(100, 3000), b"c")])
        t += rng.expovariate(1 / 60)
    assert run(tmp_path, cap) == []


# --- exfiltration -----------------------------------------------------------------------------------------

EXFIL = [with_params("exfiltration", min_bytes=200_000)]  # a small capture: the volume threshold scaled down


def test_exfiltration_fires_far_above_the_hosts_baseline(tmp_path):
    cap = Capture()
    for i in range(4):
        cap.upload(i * 10, "10.0.0.7", f"198.51.100.{20 + i}", 47000 + i, 443, 5_000)
    cap.upload(60, "10.0.0.7", "203.0.113.99", 47100, 443, 400_000)
    alerts = run(tmp_path, cap, EXFIL)
    assert sids(alerts) == [SID["exfiltration"]]
    assert alerts[0].dest_ip == "203.0.113.99" and "sent 400,000 bytes" in alerts[0].signature
    assert "80x its median" in alerts[0].signature
    (tmp_path / "shipped").mkdir()
    assert run(tmp_path / "shipped", cap) == []  # 400 kB is far below the shipped 50 MB threshold


def test_exfiltration_quiet_on_even_uploads_and_internal_copies(tmp_path):
    cap = Capture()
    for i in range(3):  # a backup client sending the same volume to each of its three destinations
        cap.upload(i * 10, "10.0.0.7", f"198.51.100.{30 + i}", 47200 + i, 443, 400_000)
    cap.upload(50, "10.0.0.8", "10.0.0.30", 47300, 445, 400_000)  # to the file server: not outbound
    assert run(tmp_path, cap, EXFIL) == []


# --- lateral movement ---------------------------------------------------------------------------------------

def test_lateral_movement_after_a_scan(tmp_path):
    cap = Capture()
    for i, port in enumerate(range(1, 31)):
        cap.rejected(i * 0.01, ATTACKER, VICTIM, 40000 + i, port)
    cap.session(10, ATTACKER, "10.0.0.9", 41000, 445, [(b"s" * 200, b"s" * 300)])
    cap.session(20, ATTACKER, "10.0.0.9", 41001, 3389, [(b"r" * 200, b"r" * 300)])
    cap.session(30, ATTACKER, "198.51.100.3", 41002, 22, [(b"k" * 200, b"k" * 300)])  # external: not lateral
    alerts = run(tmp_path, cap)
    lateral = [a for a in alerts if a.signature_id == SID["lateral_movement"]]
    assert [(a.dest_ip, a.dest_port) for a in lateral] == [("10.0.0.9", 445), ("10.0.0.9", 3389)]
    assert f"after alert {SID['port_scan']} (Port scan)" in lateral[0].signature
    assert sids(alerts) == sorted([SID["port_scan"]] + [SID["lateral_movement"]] * 2)


def test_lateral_movement_quiet_without_a_prior_alert(tmp_path):
    cap = Capture()
    cap.session(10, ATTACKER, "10.0.0.9", 41000, 445, [(b"s" * 200, b"s" * 300)])
    cap.session(20, ATTACKER, "10.0.0.9", 41001, 3389, [(b"r" * 200, b"r" * 300)])
    assert run(tmp_path, cap) == []


def test_lateral_movement_quiet_before_the_alert(tmp_path):
    cap = Capture()
    cap.session(0, ATTACKER, "10.0.0.9", 41000, 445, [(b"s" * 200, b"s" * 300)])  # before the scan
    for i, port in enumerate(range(1, 31)):
        cap.rejected(100 + i * 0.01, ATTACKER, VICTIM, 40000 + i, port)
    assert sids(run(tmp_path, cap)) == [SID["port_scan"]]


# --- rule files -------------------------------------------------------------------------------------------

GOOD = (SHIPPED_RULES / "behaviour" / "port-scan.yaml").read_text()


def _load(tmp_path, text: str, name: str = "r.yaml"):
    f = tmp_path / name
    f.write_text(text)
    return f, load_behaviour_rules([f])


def test_rule_file_errors_carry_path_and_line(tmp_path):
    f, (rules, errors) = _load(tmp_path, GOOD.replace("severity: 2", "severity: 5")
                                            .replace("min_ports: 20", "min_ports: many\n  max_ports: 3"))
    lines = GOOD.replace("min_ports: 20", "min_ports: many\n  max_ports: 3").splitlines()
    sev = lines.index("severity: 5") + 1 if "severity: 5" in lines else GOOD.splitlines().index("severity: 2") + 1
    mp = next(i for i, ln in enumerate(lines, 1) if "min_ports" in ln)
    assert rules == []
    assert [str(e) for e in errors] == [
        f"{f}:{sev}: severity must be 1 (highest), 2 or 3",
        f"{f}:{mp}: parameter 'min_ports' must be like 20",
        f"{f}:{mp + 1}: unknown parameter 'max_ports' for port_scan",
    ]


def test_rule_file_yaml_syntax_error_and_missing_keys(tmp_path):
    f, (_, errors) = _load(tmp_path, "id: 1\nname: [unclosed\nkind: port_scan\n")
    assert len(errors) == 1 and re.fullmatch(rf"{re.escape(str(f))}:\d+: invalid YAML: .+", str(errors[0]))
    f, (_, errors) = _load(tmp_path, "id: 1\nname: x\nkind: nope\n", "m.yaml")
    assert [str(e) for e in errors] == [
        f"{f}:1: missing key 'severity'", f"{f}:1: missing key 'tactic'", f"{f}:1: missing key 'technique'",
        f"{f}:1: missing key 'description'", f"{f}:3: unknown kind 'nope' (known: " + ", ".join(
            ["port_scan", "host_sweep", "brute_force", "long_connection", "dns_tunnelling", "beaconing",
             "exfiltration", "cleartext_credentials", "lateral_movement", "callback", "bind_shell",
             "executable_download", "cleartext_admin", "large_upload", "remote_service", "share_read",
             "shared_account", "rpc_operation"]) + ")"]


def test_duplicate_ids_are_rejected(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text("# the same rule again\n" + GOOD)
    rules, errors = load_behaviour_rules([tmp_path])
    assert len(rules) == 1
    assert [str(e) for e in errors] == [f"{tmp_path / 'b.yaml'}:2: duplicate id 9000001 (first in {tmp_path / 'a.yaml'})"]


# --- EVE -----------------------------------------------------------------------------------------------------

def test_eve_fields_follow_suricata(tmp_path):
    cap = Capture()
    cap.session(0, "10.0.0.7", "198.51.100.9", 44400, 21, ftp_login(b"alice", b"pw", ok=False))
    [alert] = run(tmp_path, cap)
    eve = json.loads(json.dumps(alert.to_eve()))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000", eve["timestamp"])
    assert eve["timestamp"].startswith("2024-05-01T10:00:00.")
    assert eve["event_type"] == "alert"
    assert isinstance(eve["flow_id"], int) and 0 < eve["flow_id"] < 2**63 and eve["flow_id"] == flow_id(alert.uid)
    assert eve["community_id"].startswith("1:")
    assert (eve["src_ip"], eve["src_port"], eve["dest_ip"], eve["dest_port"]) == ("10.0.0.7", 44400, "198.51.100.9", 21)
    assert eve["proto"] == "TCP" and eve["app_proto"] == "ftp"
    assert eve["alert"] == {
        "action": "allowed", "gid": 1, "signature_id": SID["cleartext_credentials"], "rev": 1,
        "signature": "Cleartext credentials: FTP login for 'alice' sent in clear text",
        "category": "Potential Corporate Privacy Violation", "severity": 2,
        "metadata": {"mitre_tactic": ["TA0006 Credential Access"], "mitre_technique": ["T1552 Unsecured Credentials"],
                     "wiretrail_behaviour": ["cleartext_credentials"]}}


def test_eve_timestamp_flow_id_and_proto_names():
    assert eve_timestamp(1_714_557_600_123_456_789) == "2024-05-01T10:00:00.123456+0000"
    assert flow_id("CAbc") == flow_id("CAbc") != flow_id("CAbd")
    a = Alert(ts_ns=0, signature_id=1, signature="s", severity=3, src_ip="::1", dest_ip="::2", proto="icmp")
    eve = a.to_eve()
    assert eve["proto"] == "ICMP" and "flow_id" not in eve and "src_port" not in eve
    out = __import__("io").StringIO()
    assert write_eve([a, a], out) == 2 and len(out.getvalue().splitlines()) == 2


# --- every rule at once, on SQLite and PostgreSQL ------------------------------------------------------------

def test_every_rule_on_one_capture(db_url, tmp_path):
    rng = random.Random(9)
    cap = Capture()
    for i, port in enumerate(range(1, 31)):  # port scan, then SMB to another internal host
        cap.rejected(i * 0.01, ATTACKER, VICTIM, 40000 + i, port)
    cap.session(10, ATTACKER, "10.0.0.9", 41000, 445, [(b"s" * 200, b"s" * 300)])
    for i in range(6):
        cap.session(20 + i * 2, "10.0.0.70", VICTIM, 44000 + i, 21, ftp_login(b"root", b"guess", ok=False))
    for i in range(60):
        cap.dns(40 + i * 0.5, "10.0.0.71", "10.0.0.53", f"{random_label(rng, 45)}.x.evil.example", "TXT", 30000 + i, i)
    for i in range(30):
        cap.session(i * 60 + rng.uniform(-0.3, 0.3), "10.0.0.72", "203.0.113.77", 46000 + i, 8443, [(b"b" * 220, b"c")])
    cap.session(0, "10.0.0.73", "203.0.113.5", 44600, 443, [(b"ping", b"pong")] * 35, gap=60)
    for i in range(4):
        cap.upload(100 + i * 10, "10.0.0.74", f"198.51.100.{20 + i}", 47000 + i, 443, 5_000)
    cap.upload(200, "10.0.0.74", "203.0.113.99", 47100, 443, 400_000)
    for i in range(25):
        cap.unanswered(300 + i * 0.05, "10.0.0.75", f"10.0.1.{i + 1}", 42000 + i, 445)
    path = cap.write(tmp_path / "all.pcap")
    rules = [with_params("exfiltration", min_bytes=200_000) if r.kind == "exfiltration" else r for r in RULES]
    with Store(db_url) as store:
        store.ensure_schema()
        ingest([path], store)
        alerts = evaluate(store, rules)
    assert sorted((a.rule_kind, a.src_ip) for a in alerts) == sorted(
        [("port_scan", ATTACKER), ("lateral_movement", ATTACKER), ("brute_force", "10.0.0.70"),
         ("dns_tunnelling", "10.0.0.71"), ("beaconing", "10.0.0.72"), ("long_connection", "10.0.0.73"),
         ("exfiltration", "10.0.0.74"), ("host_sweep", "10.0.0.75")])
    assert [a.ts_ns for a in alerts] == sorted(a.ts_ns for a in alerts)
