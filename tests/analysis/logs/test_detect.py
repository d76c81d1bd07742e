"""`wiretrail logs detect` with Wiretrail's own Sigma rules (rules/sigma) over logs written here:
each shipped rule fires on the behaviour it names and stays quiet on the near miss beside it;
alerts go into the alerts table (kind log) once; `logs rules` reports rejected rules as
`path: reason` then the counts."""

from __future__ import annotations

import json
import os
from datetime import datetime

from click.testing import CliRunner

from analysis.cli import main


def write(path, lines, mtime="2027-01-01T06:00:00+00:00"):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    t = datetime.fromisoformat(mtime).timestamp()
    os.utime(path, (t, t))
    return path


def auth_lines() -> list[str]:
    out = []
    # 12 failures then a success from .7 (guessing, then success); 9 failures from .8 (below the threshold)
    for i in range(12):
        out.append(f"Jan  1 01:00:{i:02d} gw sshd[{100 + i}]: Failed password for root from 198.51.100.7 port {40000 + i} ssh2")
    out.append("Jan  1 01:05:00 gw sshd[200]: Accepted password for root from 198.51.100.7 port 41000 ssh2")
    for i in range(9):
        out.append(f"Jan  1 02:00:{i:02d} gw sshd[{300 + i}]: Failed password for root from 198.51.100.8 port {42000 + i} ssh2")
    # six accounts from one address (spraying); four from another (not)
    for i, user in enumerate(["admin", "test", "oracle", "guest", "ubuntu", "pi"]):
        out.append(f"Jan  1 03:00:{i:02d} gw sshd[{400 + i}]: Invalid user {user} from 203.0.113.50 port {50000 + i}")
    for i, user in enumerate(["a1", "a2", "a3", "a4"]):
        out.append(f"Jan  1 03:30:{i:02d} gw sshd[{500 + i}]: Invalid user {user} from 203.0.113.51 port {51000 + i}")
    # a new account that becomes root; an old account that does too (no alert for it)
    out.append("Jan  1 04:00:00 gw useradd[600]: new user: name=eve, UID=1002, GID=1002, home=/home/eve, shell=/bin/bash")
    out.append("Jan  1 04:10:00 gw sudo:      eve : TTY=pts/0 ; PWD=/home/eve ; USER=root ; COMMAND=/bin/bash")
    out.append("Jan  1 04:20:00 gw sudo:    alice : TTY=pts/1 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls")
    return out


WEB = [
    '192.0.2.9 - - [01/Jan/2027:05:00:00 +0000] "GET /item.php?id=1%27%20UNION%20SELECT%20user,pass%20FROM%20users-- HTTP/1.1" 200 99 "-" "sqlmap/1.7"',
    '192.0.2.9 - - [01/Jan/2027:05:00:01 +0000] "GET /static/..%2f..%2f..%2fetc/passwd HTTP/1.1" 400 0 "-" "curl/8"',
    '192.0.2.9 - - [01/Jan/2027:05:00:02 +0000] "GET /uploads/shell.php?cmd=whoami HTTP/1.1" 200 12 "-" "curl/8"',
    '192.0.2.10 - - [01/Jan/2027:05:00:03 +0000] "GET /search?q=union+station HTTP/1.1" 200 500 "-" "Mozilla/5.0"',
    '192.0.2.10 - - [01/Jan/2027:05:00:04 +0000] "GET /index.html HTTP/1.1" 200 500 "-" "Mozilla/5.0"',
]


def detect(db, *args):
    return CliRunner().invoke(main, ["logs", "detect", "--db", str(db), "--format", "json", *args])


def test_shipped_rules_fire_on_what_they_name(tmp_path):
    db = tmp_path / "w.db"
    r = CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(write(tmp_path / "auth.log", auth_lines())),
                                  str(write(tmp_path / "access.log", WEB))])
    assert r.exit_code == 0, r.output
    r = detect(db)
    assert r.exit_code == 0, r.output
    assert "11 rules loaded, 0 rejected" in r.stderr
    alerts = json.loads(r.stdout)
    fired = sorted((a["signature"], a.get("src_ip", ""), a.get("account", "")) for a in alerts)
    assert fired == sorted([
        ("SSH password guessing from one address", "198.51.100.7", "root"),
        ("SSH password guessing followed by a successful login from the same address", "198.51.100.7", "root"),
        ("Password spraying - failed logons to many accounts from one address", "203.0.113.50", "pi"),
        ("Linux account created", "", "eve"),
        ("sudo to root by an account created shortly before", "", "eve"),
        ("SQL injection in a web request", "192.0.2.9", ""),
        ("Path traversal in a web request", "192.0.2.9", ""),
        ("Web shell request", "192.0.2.9", ""),
    ])
    guess = next(a for a in alerts if a["signature"] == "SSH password guessing from one address")
    assert len(guess["eve"]["log"]["event_ids"]) == 12  # the overlapping windows merged into one alert
    assert guess["eve"]["alert"]["metadata"]["mitre_technique_id"] == ["T1110.001"]
    assert guess["level"] == "medium" and guess["severity"] == 2
    # stored once, as kind log, even when detect runs again
    assert detect(db).exit_code == 0
    stored = CliRunner().invoke(main, ["alerts", "--db", str(db), "--kind", "log", "--format", "json"])
    assert stored.exit_code == 0, stored.output
    assert len(json.loads(stored.stdout)) == 8


def test_rules_check_reports_each_rejected_rule(tmp_path):
    good = tmp_path / "rules" / "good.yml"
    good.parent.mkdir()
    good.write_text("title: sshd root login\nid: 0d7c3b7a-1b2c-4d5e-8f90-a1b2c3d4e5f6\nlogsource:\n"
                    "    product: linux\n    service: sshd\ndetection:\n    sel:\n        account: root\n"
                    "    condition: sel\nlevel: low\n")
    (tmp_path / "rules" / "broken.yml").write_text("title: no detection\nlogsource:\n    product: linux\n")
    (tmp_path / "rules" / "notyaml.yml").write_text("title: [unclosed\n")
    r = CliRunner().invoke(main, ["logs", "rules", str(tmp_path / "rules")])
    assert r.exit_code == 0, r.output
    lines = r.stderr.strip().splitlines()
    assert lines[-1] == "1 rules loaded, 2 rejected"
    assert sorted(line.split(":")[0] for line in lines[:-1]) == [str(tmp_path / "rules" / "broken.yml"),
                                                                 str(tmp_path / "rules" / "notyaml.yml")]


def test_keyword_rule_matches_the_raw_line(tmp_path):
    db = tmp_path / "w.db"
    log = write(tmp_path / "auth.log", ["Jan  1 01:00:00 gw kernel: segfault at 0 ip 00007f error 4 in libc.so.6",
                                        "Jan  1 01:00:01 gw kernel: all is well"])
    rule = tmp_path / "kw.yml"
    rule.write_text("title: segfault\nid: 5f0c6d1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f\nlogsource:\n    product: linux\n"
                    "detection:\n    keywords:\n        - 'segfault at'\n    condition: keywords\nlevel: low\n")
    assert CliRunner().invoke(main, ["logs", "ingest", "--db", str(db), str(log)]).exit_code == 0
    r = detect(db, "--rules", str(rule), "--no-store")
    assert r.exit_code == 0, r.output
    assert [a["line"] for a in json.loads(r.stdout)] == [1]


def test_ingest_and_detect_on_each_store(tmp_path, db_url):
    """The same logs and rules on SQLite and PostgreSQL give the same alerts."""
    log = write(tmp_path / "auth.log", auth_lines())
    r = CliRunner().invoke(main, ["logs", "ingest", "--db", db_url, str(log)])
    assert r.exit_code == 0, r.output
    r = detect(db_url)
    assert r.exit_code == 0, r.output
    assert sorted(a["signature"] for a in json.loads(r.stdout)) == sorted([
        "SSH password guessing from one address",
        "SSH password guessing followed by a successful login from the same address",
        "Password spraying - failed logons to many accounts from one address",
        "Linux account created", "sudo to root by an account created shortly before"])
    rows = json.loads(CliRunner().invoke(main, ["logs", "--db", db_url, "--account", "eve", "--format", "json"]).stdout)
    assert [row["action"] for row in rows] == ["account created", "sudo"]
