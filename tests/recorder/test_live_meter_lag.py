"""Capture first for the flow meter too (``recorder.metering``), in a network namespace
(127.0.0.0/8 addresses only): with the meter's process slowed down on purpose (each batch 0.3 s
longer, ``slowparsers.py --meter``), capture still writes every packet without waiting for it,
the meter falls seconds behind and catches up, in order, and the flows it stored equal an ingest
of the sealed files."""

from __future__ import annotations

import collections
import re
import sys
from pathlib import Path

from click.testing import CliRunner

from analysis.cli import main as wiretrail
from tests.recorder.live import flows, packets, sealed

ROOT = Path(__file__).resolve().parents[2]
STOPPED = re.compile(r"stopped \S+: (\d+) packets, (\d+) kernel drops.*capture lag at most (\d+) ms, "
                     r"meter lag at most (\d+) ms")


def test_a_slow_meter_lags_and_catches_up_without_capture_waiting(netns, tmp_path, loop_pcap):
    from tests.recorder.live import Recorder

    rec = Recorder(netns, tmp_path, "--rotate-size", "1M", "--rotate-interval", "0", env={"PYTHONPATH": str(ROOT)},
                   wrap=(sys.executable, str(ROOT / "tests" / "recorder" / "slowparsers.py"), "--meter")).ready()
    netns.replay(loop_pcap, pps=10000)  # 2 s; about 20 batches, each 0.3 s longer to meter
    assert rec.stop() == 0, rec.text()
    log = rec.text()
    captured, drops, capture_lag, meter_lag = map(int, STOPPED.search(log).groups())
    assert captured == 20_000 and drops == 0, log
    # the meter fell behind the wire by seconds; capture did not wait for it
    assert meter_lag >= 1000 and capture_lag < meter_lag, log

    files = sealed(rec.out)
    sent, kept = packets([loop_pcap]), packets(files)
    assert sent - kept == collections.Counter()
    again = tmp_path / "ingest.db"
    r = CliRunner().invoke(wiretrail, ["ingest", "--no-parsers", "--db", str(again), *map(str, files)])
    assert r.exit_code == 0, r.output
    live = flows(rec.db)
    assert len(live) > 1000 and live == flows(again)
