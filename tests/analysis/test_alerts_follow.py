"""``wiretrail alerts --follow``: a real process polling the store prints the alerts stored
after it started (and not the ones before), one line each, as they arrive."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from recorder.core.store import Store

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_793_696_400_000_000_000


def row(i: int) -> dict:
    return {"ts_ns": T0 + i, "src_ip": "203.0.113.66", "dest_ip": "192.168.1.20", "dest_port": 21, "gid": 1,
            "signature_id": 9000003, "rev": 1, "signature": f"Brute force login {i}", "severity": 1,
            "action": "allowed", "kind": "behaviour", "eve": {"n": i}}


# The CLI as at a terminal, where Ctrl-C interrupts: a test run started as a background job (as CI
# may start it) hands its children SIGINT ignored, and Python then installs no handler for it.
AT_A_TERMINAL = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
                 "from analysis.cli import main; main()")


def test_follow_prints_new_alerts_as_they_arrive(tmp_path):
    db = str(tmp_path / "w.db")
    with Store(db) as store:
        store.ensure_schema()
        store.add_alerts([row(0)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from analysis.cli import main; main()", "alerts", "--db", db,
                             "--follow", "--format", "jsonl", "--severity", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    try:
        # polling from here (a fixed sleep was too short on a loaded machine)
        assert proc.stderr.readline().startswith("following alerts stored from now on (1 already stored)")
        with Store(db) as store:
            store.add_alerts([row(1), {**row(2), "severity": 3}, row(3)])
        added = time.monotonic()
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
        reader.start()
        while len(lines) < 2 and time.monotonic() - added < 15:
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(10)
    assert [json.loads(line)["signature"] for line in lines] == ["Brute force login 1", "Brute force login 3"]


def attempt(i: int, src: str = "203.0.113.66") -> dict:
    return {"ts_ns": T0 + i * 10**8, "src_ip": src, "src_port": 40000 + i, "dest_ip": "192.168.1.20",
            "dest_port": 21, "gid": 1, "signature_id": 2100001, "rev": 1, "uid": f"C{i}",
            "signature": "ET SCAN FTP brute force attempt", "severity": 1, "action": "allowed", "kind": "signature",
            "eve": {"n": i}}


def test_follow_shows_repeats_as_one_line_with_their_count(tmp_path):
    """700 alerts of one brute force (one per connection, as stored: one per event) are the first
    alert at once, then one line counting the other 699 when the window closes, not 700 lines;
    another source is its own line; repeats after the window start over; Ctrl-C shows what was
    still being counted."""
    db = str(tmp_path / "w.db")
    with Store(db) as store:
        store.ensure_schema()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", AT_A_TERMINAL, "alerts", "--db", db,
                             "--follow", "--format", "jsonl", "--repeats", "6"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(map(json.loads, iter(proc.stdout.readline, ""))),
                              daemon=True)
    try:
        assert proc.stderr.readline().startswith("following alerts stored from now on (0 already stored)")
        with Store(db) as store:
            store.add_alerts([attempt(i) for i in range(350)] + [attempt(0, "198.51.100.7")])
            store.add_alerts([attempt(i) for i in range(350, 700)])
        reader.start()
        deadline = time.monotonic() + 40  # the window is 6 s: slack for a loaded machine
        while len(lines) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        with Store(db) as store:  # after the window: starts over
            store.add_alerts([attempt(i) for i in range(700, 703)])
        while len(lines) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    got = [(x["src_ip"], x["src_port"], x["count"], round((x["last_ts"] - x["ts"]) * 10)) for x in lines]
    assert got == [("203.0.113.66", 40000, 1, 0), ("198.51.100.7", 40000, 1, 0),
                   ("203.0.113.66", 40001, 699, 698),  # the repeats: from the second to the 700th
                   ("203.0.113.66", 40700, 1, 0), ("203.0.113.66", 40701, 2, 1)], got
    assert proc.returncode in (0, 1), proc.stderr.read()
