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
