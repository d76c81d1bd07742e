"""Log events joined to flows: an sshd login names the SSH connection from its address and port,
a web request the HTTP connection from its address open at its time; an event with no flow
stays unlinked."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime

from click.testing import CliRunner

from analysis.cli import main
from tests.analysis.behaviour.traffic import T0, Capture, http_get


def stamp(offset: float, fmt: str) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).strftime(fmt)


def test_ssh_login_and_web_request_take_the_flow_uid(tmp_path):
    cap = Capture()
    cap.session(10, "198.51.100.7", "10.0.0.5", 41000, 22, [(b"SSH-2.0-x\r\n", b"SSH-2.0-y\r\n")])
    cap.session(12, "198.51.100.7", "10.0.0.5", 41001, 22)  # same address, another port
    cap.session(30, "198.51.100.9", "10.0.0.6", 52000, 80, http_get("shop.example", "/cart"))
    pcap = cap.write(tmp_path / "c.pcap")
    db = tmp_path / "w.db"
    assert CliRunner().invoke(main, ["ingest", "--db", str(db), pcap]).exit_code == 0
    flows = json.loads(CliRunner().invoke(main, ["flows", "--db", str(db), "--format", "json"]).stdout)
    uid = {(f["id.orig_h"], f["id.orig_p"]): f["uid"] for f in flows}
    auth = tmp_path / "auth.log"
    auth.write_text(
        f"{stamp(10.2, '%b %e %H:%M:%S')} srv sshd[5]: Accepted password for root from 198.51.100.7 port 41000 ssh2\n"
        f"{stamp(11, '%b %e %H:%M:%S')} srv sshd[6]: Accepted password for root from 198.51.100.7 port 49999 ssh2\n")
    os.utime(auth, (T0 + 60, T0 + 60))  # a year-less syslog time takes the file's year
    web = tmp_path / "access.log"
    web.write_text(f'198.51.100.9 - - [{stamp(30.05, "%d/%b/%Y:%H:%M:%S +0000")}] "GET /cart HTTP/1.1" 200 2 "-" "x"\n')
    r = CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(auth), str(web)])
    assert r.exit_code == 0, r.output
    assert "2 events linked to the flows that carried them" in r.stderr
    rows = json.loads(CliRunner().invoke(main, ["logs", "--db", str(db), "--format", "json"]).stdout)
    got = {(row["src_ip"], row.get("src_port")): row.get("uid") for row in rows}
    assert got == {("198.51.100.7", 41000): uid[("198.51.100.7", 41000)],
                   ("198.51.100.7", 49999): None,
                   ("198.51.100.9", None): uid[("198.51.100.9", 52000)]}


def test_login_after_a_network_alert_and_expect(tmp_path):
    """Six failed FTP logins from 10.0.0.99 raise the brute-force behaviour alert in replay; an
    SSH login from that address a minute later is the log-and-network alert; --expect holds."""
    from tests.analysis.behaviour.traffic import ftp_login

    cap = Capture()
    for i in range(6):
        cap.session(200 + i * 2, "10.0.0.99", "10.0.0.6", 44000 + i, 21, ftp_login(b"admin", f"g{i}".encode(), ok=False))
    pcap = cap.write(tmp_path / "b.pcap")
    db = tmp_path / "w.db"
    r = CliRunner().invoke(main, ["replay", "--db", str(db), "--format", "json", pcap])
    assert r.exit_code == 0, r.output
    network = {e["alert"]["signature"] for e in json.loads(r.stdout)}
    assert any("brute" in s.lower() for s in network)
    auth = tmp_path / "auth.log"
    auth.write_text(f"{stamp(300, '%b %e %H:%M:%S')} srv sshd[5]: Accepted password for admin from 10.0.0.99 port 50000 ssh2\n"
                    f"{stamp(301, '%b %e %H:%M:%S')} srv sshd[6]: Accepted password for bob from 10.0.0.42 port 50001 ssh2\n")
    os.utime(auth, (T0 + 600, T0 + 600))
    assert CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(auth)]).exit_code == 0
    expect = tmp_path / "expect.yaml"
    expect.write_text("alerts:\n  - sid: 2100000001\n    count: 1\n    src_ip: 10.0.0.99\n")
    r = CliRunner().invoke(main, ["logs", "detect", "--db", str(db), "--format", "eve", "--expect", str(expect)])
    assert r.exit_code == 0, r.output
    eves = [json.loads(line) for line in r.stdout.splitlines()]
    joined = [e for e in eves if e["alert"]["signature_id"] == 2100000001]
    assert len(joined) == 1 and joined[0]["account"] == "admin"
    assert joined[0]["log"]["after_alert"]["signature"] in network  # the latest alert naming the address
    assert "1 expectation(s) hold" in r.stderr
    expect.write_text("alerts:\n  - sid: 2100000001\n    count: 2\n")
    r = CliRunner().invoke(main, ["logs", "detect", "--db", str(db), "--expect", str(expect), "--no-store"])
    assert r.exit_code == 3 and "expected exactly 2, got 1" in r.stderr
    # a bad expectations file: every problem, through the one error mapping, exit 1, nothing run
    expect.write_text("only: yes please\nalerts:\n  - sid: 0\n")
    r = CliRunner().invoke(main, ["logs", "detect", "--db", str(db), "--expect", str(expect), "--no-store"])
    problems = r.stderr.splitlines()
    assert r.exit_code == 1 and len(problems) >= 2 and problems[0].startswith(f"Error: {expect}:1: "), r.stderr
    assert all(p.startswith(f"{expect}:") for p in problems[1:]) and r.stdout == ""


def test_replay_runs_sigma_rules_over_the_stores_logs(tmp_path):
    """replay --db with a Sigma rule among --rules: the log alerts come out with the network ones."""
    from analysis.replay import SHIPPED_RULES

    db = tmp_path / "w.db"
    auth = tmp_path / "auth.log"
    auth.write_text("".join(f"{stamp(100 + i, '%b %e %H:%M:%S')} srv sshd[{i}]: Failed password for root from "
                            f"203.0.113.5 port {40000 + i} ssh2\n" for i in range(12)))
    os.utime(auth, (T0 + 600, T0 + 600))
    assert CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(auth)]).exit_code == 0
    cap = Capture()
    for i, port in enumerate(range(1, 41)):
        cap.rejected(i * 0.01, "10.0.0.66", "10.0.0.5", 40000 + i, port)
    pcap = cap.write(tmp_path / "scan.pcap")
    sigma = SHIPPED_RULES / "sigma" / "linux_ssh_password_guessing.yml"
    r = CliRunner().invoke(main, ["replay", "--db", str(db), "--rules", str(SHIPPED_RULES / "behaviour"),
                                  "--rules", str(sigma), "--format", "json", pcap])
    assert r.exit_code == 0, r.output
    assert "2 Sigma rules" in r.stderr
    names = [e["alert"]["signature"] for e in json.loads(r.stdout)]
    assert "SSH password guessing from one address" in names
    assert any("scan" in n.lower() for n in names)
    stored = json.loads(CliRunner().invoke(main, ["alerts", "--db", str(db), "--kind", "log", "--format", "json"]).stdout)
    assert [a["signature"] for a in stored] == ["SSH password guessing from one address"]
