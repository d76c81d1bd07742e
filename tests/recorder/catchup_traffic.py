"""Traffic the shipped rules flag, and the signature alerts of a store: what the catch-up and
shedding tests replay into the recorder and compare with a replay."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.analysis.behaviour.traffic import Capture

ATTACKER, SERVER = "127.10.0.66", "127.10.0.20"
KEY = "ts_ns, signature_id, src_ip, src_port, dest_ip, dest_port, uid"


def requests_capture(path: Path, n: int = 40) -> str:
    """``n`` HTTP requests for /etc/passwd (shipped sid 9100004), one connection each, 0.15 s apart."""
    cap = Capture()
    for i in range(n):
        req = f"GET /view?f=../../etc/passwd&n={i} HTTP/1.1\r\nHost: shop\r\n\r\n".encode()
        cap.session(i * 0.15, ATTACKER, SERVER, 52000 + i, 80, [(req, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")])
    return cap.write(path)


def signature_alerts(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {KEY} FROM alerts WHERE kind = 'signature' ORDER BY {KEY}").fetchall()


def alerts_after_catch_up(rec_db: Path, out: Path, tmp: Path, timeout: float = 60.0):
    """A ``wiretrail replay`` of the sealed files in ``out`` with the shipped rules, then the
    recorder's signature alerts once they equal the replay's (or ``timeout`` later):
    (the recorder's alerts, the replay's, the replay)."""
    from analysis.replay import SHIPPED_RULES, replay_captures

    files = sorted(str(p) for p in out.glob("*.pcap"))
    replay = replay_captures(files, rules=[str(SHIPPED_RULES / "wiretrail.rules")], db=str(tmp / "replay.db"))
    expected = signature_alerts(tmp / "replay.db")
    deadline = time.monotonic() + timeout
    while signature_alerts(rec_db) != expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return signature_alerts(rec_db), expected, replay
