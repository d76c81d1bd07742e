"""Live signatures with catch-up, in a network namespace (127.0.0.0/8 addresses only): parsers
slowed down on purpose (``slowparsers.py``: a one-batch queue, a slow hand-over) skip batches,
so the live engine misses some of the requests that set off a shipped signature; the catch-up
matches those files again from the sealed file (the last one after a restart), and the stored
signature alerts then equal a `wiretrail replay` of the sealed files, each stored once."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.recorder.catchup_traffic import alerts_after_catch_up, requests_capture

pytest.importorskip("scapy")

ROOT = Path(__file__).resolve().parents[2]


def test_skipped_batches_caught_up_equal_a_replay(netns, tmp_path):
    from tests.recorder.live import Recorder

    pcap = Path(requests_capture(tmp_path / "requests.pcap"))
    cfg = tmp_path / "recorder.toml"
    cfg.write_text('detect_interval = "1s"\nrotate_interval = "2s"\n')
    env = {"PYTHONPATH": str(ROOT)}
    slow = Recorder(netns, tmp_path, "--config", str(cfg), env=env,
                    wrap=(sys.executable, str(ROOT / "tests" / "recorder" / "slowparsers.py"))).ready()
    subprocess.run(["ip", "netns", "exec", netns.name, "tcpreplay", "-q", "-i", netns.tx, str(pcap)],
                   check=True, capture_output=True, timeout=120)  # at the capture's own speed (6 s)
    time.sleep(3)
    assert slow.stop() == 0
    log1 = slow.text()
    not_parsed = int(re.search(r"stopped .*?(\d+) packets not parsed", log1).group(1))
    with sqlite3.connect(slow.db) as conn:
        live, packets = conn.execute("SELECT SUM(inspected_live), SUM(packets) FROM captures").fetchone()
    assert not_parsed > 0 and 0 < live < packets, (not_parsed, live, packets, log1)

    # a restart: the last file (its count was written at the stop) is caught up too
    rec = Recorder(netns, tmp_path, "--config", str(cfg), env=env).ready()
    got, expected, replay = alerts_after_catch_up(rec.db, tmp_path / "out", tmp_path)
    assert len(expected) == 40, expected  # one per request
    assert rec.stop() == 0
    log2 = rec.text()
    assert got == expected, (len(got), len(expected), log1, log2)
    stats = re.findall(r"signatures: packets inspected live (\d+), by catch-up (\d+) \((\d+) files, the last "
                       r"([\d.]+) s after its last packet\)", log1 + log2)
    assert stats and max(int(s[0]) for s in stats) > 0 and max(int(s[1]) for s in stats) > 0, log1 + log2
    print(f"live {live} of {packets} packets; not parsed {not_parsed}; stats lines {stats[-1]}; "
          f"alerts {len(got)} = replay {len(replay.alerts)}")
