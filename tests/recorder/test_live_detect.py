"""Live detection end to end, in a network namespace (127.0.0.0/8 addresses only): a capture
with a port scan, an FTP brute force that ends in a successful login and so a cleartext login,
replayed at its original speed into the recorder; each alert must be in the store while the file
holding its packets is still open (no waiting for a file to be sealed: the latencies are printed,
not asserted, as every timing here), and one aggregated e-mail (aiosmtpd) and one webhook (http.server), both in the namespace, arrive.
The same signature on several connections is one entry of that message, with its count. A
restart then neither repeats an alert nor a message."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.analysis.behaviour.traffic import Capture, ftp_login

pytest.importorskip("aiosmtpd")
pytest.importorskip("scapy")

ROOT = Path(__file__).resolve().parents[2]
ATTACKER, SERVER = "127.10.0.66", "127.10.0.20"
REQUESTS = 5


def attack_capture(path: Path) -> str:
    cap = Capture()
    for i, port in enumerate(range(1000, 1045)):  # 45 closed ports: REJ
        cap.rejected(i * 0.04, ATTACKER, SERVER, 50000 + i, port)
    t = 2.0
    for i in range(8):  # 8 wrong passwords, then the right one
        t = cap.session(t, ATTACKER, SERVER, 51000 + i, 21, ftp_login(b"shop", f"guess{i}".encode(), False)) + 0.2
    t = cap.session(t, ATTACKER, SERVER, 51100, 21, ftp_login(b"shop", b"Summer2026!", True))
    req = b"GET /download?f=../../etc/passwd HTTP/1.1\r\nHost: shop\r\n\r\n"  # a shipped signature's
    for i in range(REQUESTS):  # one alert per connection, the same finding: one entry with its count
        t = cap.session(t + 0.2, ATTACKER, SERVER, 51200 + i, 80,
                        [(req, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")])
    return cap.write(path)


def received(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def sealed_files(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM captures WHERE sealed_at IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def stored_alerts(db: Path) -> list[tuple]:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT signature_id, signature, src_ip, dest_ip FROM alerts ORDER BY id").fetchall()
    except sqlite3.Error:
        return []


def test_attack_alerts_within_seconds_and_one_notification_per_channel(netns, tmp_path):
    from tests.recorder.live import Recorder

    pcap = Path(attack_capture(tmp_path / "attack.pcap"))
    got = tmp_path / "received.jsonl"
    servers = subprocess.Popen(["ip", "netns", "exec", netns.name, sys.executable, "-c",
                                f"from tests.recorder.notifyservers import serve; serve(2525, 8025, {str(got)!r})"],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not any(r["kind"] == "ready" for r in received(got)) and time.monotonic() < deadline:
            time.sleep(0.1)
        cfg = tmp_path / "recorder.toml"
        cfg.write_text('notify_smtp_url = "smtp://127.0.0.1:2525"\nnotify_to = ["owner@shop.example"]\n'
                       'notify_webhook = ["http://127.0.0.1:8025/hook"]\nnotify_aggregate = "12s"\n'
                       'detect_interval = "1s"\nnotify_min_severity = 3\nrotate_interval = "1h"\n')
        cfg.chmod(0o600)
        env = {"PYTHONPATH": str(ROOT)}
        rec = Recorder(netns, tmp_path, "--config", str(cfg), env=env).ready()
        replay = subprocess.Popen(["ip", "netns", "exec", netns.name, "tcpreplay", "-q", "-i", netns.tx, str(pcap)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # at the capture's own speed
        first_seen: dict[int, float] = {}  # sid -> wall time it was first in the store
        sealed_then: dict[int, int] = {}  # sid -> sealed capture files when it was first in the store
        while replay.poll() is None:
            for sid, *_ in stored_alerts(rec.db):
                if sid not in first_seen:
                    first_seen[sid], sealed_then[sid] = time.time(), sealed_files(rec.db)
            time.sleep(0.1)
        assert replay.returncode == 0
        replayed, replayed_wall = time.monotonic(), time.time()
        while time.time() - replayed_wall < 40 and len(first_seen) < 4:
            for sid, *_ in stored_alerts(rec.db):
                if sid not in first_seen:
                    first_seen[sid], sealed_then[sid] = time.time(), sealed_files(rec.db)
            time.sleep(0.1)
        seen = {sid: t - replayed_wall for sid, t in first_seen.items()}  # < 0: before the replay ended
        with sqlite3.connect(rec.db) as conn:  # an alert's time: its first packet (captured: wall clock)
            first_packet = dict(conn.execute("SELECT signature_id, MIN(ts_ns) FROM alerts GROUP BY signature_id"))
        after_packet = {sid: t - first_packet[sid] / 1e9 for sid, t in first_seen.items()}
        while time.monotonic() - replayed < 40 and not {"smtp", "webhook"} <= {r["kind"] for r in received(got)}:
            time.sleep(0.2)
        alerts = stored_alerts(rec.db)
        assert rec.stop() == 0
        log = rec.text()
        print("seconds from the replay's end to each alert in the store:", {k: round(v, 2) for k, v in seen.items()})
        print("seconds from each alert's first packet to it in the store:",
              {k: round(v, 2) for k, v in after_packet.items()})
        names = {sig.split(":")[0] for _, sig, _, _ in alerts}
        assert {"Port scan", "Brute force login", "Cleartext credentials", "WIRETRAIL password file requested over HTTP"
                } <= names, (alerts, log)
        # every alert was stored while its packets' file was still open (rotate_interval 1 h): none
        # waited for a seal. Measured (printed above): -2.9 to 0.2 s from the replay's end, 0.2-3.4 s
        # from the alert's first packet (the issue asks for 5 s; before: 5.4-5.5 s, tcp_close_delay
        # and the 5-s flush)
        assert set(sealed_then) == set(first_seen) and not any(sealed_then.values()), sealed_then
        assert len(set(alerts)) == len(alerts) - REQUESTS + 1  # the requests' alerts differ only by flow
        assert sum(sig.startswith("WIRETRAIL password file") for _, sig, _, _ in alerts) == REQUESTS
        assert "ALERT medium [behaviour" in log
        mails = [r for r in received(got) if r["kind"] == "smtp"]
        hooks = [r for r in received(got) if r["kind"] == "webhook"]
        assert len(mails) == 1 and len(hooks) == 1, (mails, hooks, log)
        print(f"seconds from the replay's end to the e-mail: {mails[0]['t'] - replayed_wall:.1f}, "
              f"to the webhook: {hooks[0]['t'] - replayed_wall:.1f} (notify_aggregate 12 s)")
        assert "Port scan" in mails[0]["subject"] and "WIRETRAIL password file" in mails[0]["subject"]
        assert f"{REQUESTS} times until" in mails[0]["body"], mails[0]  # one entry with its count
        assert "wiretrail alerts --db" in mails[0]["body"]
        assert len(hooks[0]["body"]["alerts"]) == len(alerts)

        # a restart: nothing stored twice, nothing sent twice
        rec2 = Recorder(netns, tmp_path, "--config", str(cfg), env=env).ready()
        time.sleep(6)
        assert rec2.stop() == 0
        assert stored_alerts(rec.db) == alerts
        assert len([r for r in received(got) if r["kind"] in ("smtp", "webhook")]) == 2
    finally:
        servers.terminate()
        servers.wait(10)
