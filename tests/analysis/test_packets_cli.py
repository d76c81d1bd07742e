"""`wiretrail packets`: a flow's packets dissected by tshark (pyshark), its TCP payload
reassembled (--follow); without tshark one line says how to install it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner

from analysis.cli import main
from tests.helpers import wiretrail_cli

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("packets") / "w.db"
    r = CliRunner().invoke(main, ["ingest", "--db", str(db), str(DEMO)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["flows", "--db", str(db), "--format", "jsonl", "--proto", "tcp", "--port", "80"])
    import json

    flow = json.loads(r.stdout.splitlines()[0])
    return db, flow


def _payloads(flow: dict) -> tuple[bytes, bytes]:
    """Each side's TCP payload from the original capture, in capture order (no retransmissions)."""
    a, b = b"", b""
    with open(DEMO, "rb") as f:
        for _, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            if not isinstance(ip, dpkt.ip.IP) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            t = ip.data
            src = (dpkt.utils.inet_to_str(ip.src), t.sport)
            dst = (dpkt.utils.inet_to_str(ip.dst), t.dport)
            orig, resp = (flow["id.orig_h"], flow["id.orig_p"]), (flow["id.resp_h"], flow["id.resp_p"])
            if (src, dst) == (orig, resp):
                a += bytes(t.data)
            elif (src, dst) == (resp, orig):
                b += bytes(t.data)
    return a, b


def test_follow_gives_both_sides_payload(demo_db):
    db, flow = demo_db
    r = CliRunner().invoke(main, ["packets", "--db", str(db), "--uid", flow["uid"], "--follow"])
    assert r.exit_code == 0, r.output
    a, b = _payloads(flow)
    assert a and b
    head_a = f"=== {flow['id.orig_h']}:{flow['id.orig_p']} -> {flow['id.resp_h']}:{flow['id.resp_p']}: {len(a)} bytes ==="
    assert head_a in r.stdout
    assert a.decode().replace("\r", "") in r.stdout.replace("\r", "")
    assert b.decode().replace("\r", "") in r.stdout.replace("\r", "")
    r = CliRunner().invoke(main, ["packets", "--db", str(db), "--uid", flow["uid"], "--follow", "--hex"])
    assert r.exit_code == 0 and "00000000  47 45 54 20" in r.stdout  # "GET "


def test_dissected_by_tshark(demo_db):
    pytest.importorskip("pyshark", reason="pyshark is optional (pip install pyshark)")
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    db, flow = demo_db
    r = CliRunner().invoke(main, ["packets", "--db", str(db), "--uid", flow["uid"], "--format", "jsonl"])
    assert r.exit_code == 0, r.output
    import json

    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == flow["orig_pkts"] + flow["resp_pkts"]
    assert "HTTP" in {x["protocol"] for x in rows}
    r = CliRunner().invoke(main, ["packets", "--db", str(db), "--uid", flow["uid"], "--limit", "1", "--format",
                                  "details"])
    assert r.exit_code == 0 and "Layer TCP" in r.stdout
    # pyshark's SIGCHLD watcher is detached again: no handler and no wakeup fd left behind, so a
    # child process ending later writes nowhere (a full wakeup pipe printed a line on stderr)
    assert signal.getsignal(signal.SIGCHLD) in (signal.SIG_DFL, None)
    previous = signal.set_wakeup_fd(-1)
    assert previous == -1


def test_without_tshark_one_line_says_how_to_install(demo_db, tmp_path):
    db, flow = demo_db
    env = {**os.environ, "PATH": str(tmp_path)}  # no tshark on this PATH
    p = subprocess.run([wiretrail_cli(), "packets", "--db", str(db), "--uid", flow["uid"]], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == [
        "Error: dissecting packets needs tshark and pyshark: apt-get install tshark && pip install pyshark "
        "(or pip install 'wiretrail[dissect]')"]


def test_unknown_uid(demo_db):
    db, _ = demo_db
    r = CliRunner().invoke(main, ["packets", "--db", str(db), "--uid", "Cnope", "--follow"])
    assert r.exit_code == 1 and r.stderr.strip() == f"Error: {db}: no flow with uid Cnope"
