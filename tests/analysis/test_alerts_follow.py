"""``wiretrail alerts --follow``: a real process polling the store prints the alerts stored
after it started (and not the ones before), one line each, as they arrive."""

from __future__ import annotations

import json
import os
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
        time.sleep(2.5)  # started and polling
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
