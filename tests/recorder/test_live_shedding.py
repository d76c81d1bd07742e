"""Capture first (``recorder.lag``), in a network namespace (127.0.0.0/8 addresses only): a
recorder whose meter counts itself behind whenever a batch waits for it (``slowparsers.py
--shed``) feeds those batches to no parser and drops the ones still queued when it falls behind; the live engine thus
misses some of the requests that set off a shipped signature, the catch-up matches those files
again from the sealed file, and the stored signature alerts equal a `wiretrail replay` of the
sealed files."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recorder.core.capio.pcapio import read_batches
from tests.recorder.catchup_traffic import alerts_after_catch_up, requests_capture

pytest.importorskip("scapy")

ROOT = Path(__file__).resolve().parents[2]
CAPTURED = re.compile(r"INFO stats \S+: packets (\d+),")
STOPPED = re.compile(r"stopped .*?(\d+) packets not parsed \((\d+) shed in (\d+) spells the meter was behind")
CAUGHT_UP = re.compile(r"signatures: packets inspected live (\d+), by catch-up (\d+) \((\d+) files, the last "
                       r"([\d.]+) s after its last packet\), deferred (\d+) times while capture was behind")


def captured(log: str) -> int:
    seen = CAPTURED.findall(log)
    return int(seen[-1]) if seen else 0


def test_shed_batches_caught_up_equal_a_replay(netns, tmp_path):
    from tests.recorder.live import Recorder

    pcap = Path(requests_capture(tmp_path / "requests.pcap"))
    cfg = tmp_path / "recorder.toml"
    cfg.write_text('detect_interval = "1s"\nrotate_interval = "2s"\n')
    rec = Recorder(netns, tmp_path, "--config", str(cfg), env={"PYTHONPATH": str(ROOT)},
                   wrap=(sys.executable, str(ROOT / "tests" / "recorder" / "slowparsers.py"), "--shed")).ready()
    subprocess.run(["ip", "netns", "exec", netns.name, "tcpreplay", "-q", "-i", netns.tx, str(pcap)],
                   check=True, capture_output=True, timeout=120)  # at the capture's own speed (6 s)
    sent = sum(len(b) for b in read_batches(str(pcap)))
    deadline = time.monotonic() + 120  # the first batch waits for the decoder's compilation
    while time.monotonic() < deadline and not (captured(rec.text()) >= sent
                                               and not list((tmp_path / "out").glob("*.part"))):
        time.sleep(0.5)  # until every packet is captured and the last file sealed (rotate_interval)
    got, expected, replay = alerts_after_catch_up(rec.db, tmp_path / "out", tmp_path)
    assert len(expected) == 40, expected  # one per request
    assert rec.stop() == 0
    log = rec.text()
    assert got == expected, (len(got), len(expected), log)
    not_parsed, shed, spells = map(int, STOPPED.search(log).groups())
    assert shed > 0 and shed == not_parsed and spells > 0, log  # nothing skipped but what was shed
    with sqlite3.connect(rec.db) as conn:
        live, packets = conn.execute("SELECT SUM(inspected_live), SUM(packets) FROM captures").fetchone()
    assert 0 < live < packets, (live, packets, log)
    stats = CAUGHT_UP.findall(log)
    assert stats and int(stats[-1][1]) > 0 and int(stats[-1][2]) > 0, log  # files caught up
    print(f"live {live} of {packets} packets; shed {shed} in {spells} spells; stats {stats[-1]}; "
          f"alerts {len(got)} = replay {len(replay.alerts)}")
