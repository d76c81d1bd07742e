"""The flow meter's bookkeeping: keys found by hash, with collisions kept correct."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.flow import flowmeter
from recorder.core.flow.flowmeter import FlowMeter

CAPTURES = Path(__file__).resolve().parents[2] / "captures"


def meter_rows(path: Path) -> list[tuple]:
    out: list = []
    meter = FlowMeter(out.append)
    dec = Decoder()
    for raw in read_batches(str(path), batch_size=37):  # small batches: keys cross batch bounds
        meter.add(raw, dec.decode(raw), 1, dec.tunnels)
    meter.finish()
    return sorted(r for batch in out for r in batch.rows())


@pytest.mark.parametrize("capture", ["demo.pcap", "tcp_states.pcap", "encap.pcap"])
def test_every_key_hash_colliding_gives_the_same_flows(capture, monkeypatch):
    normal = meter_rows(CAPTURES / capture)
    # the worst case: every key hashes alike, so every connection lives in the exact dict
    monkeypatch.setattr(flowmeter, "_key_hash", lambda k: np.zeros(len(k), dtype=np.uint64))
    colliding = meter_rows(CAPTURES / capture)
    assert colliding == normal
    assert len(normal) > 5


def test_snapshot_is_the_open_connections_as_they_would_end_now():
    """The recorder's interim records: a snapshot changes nothing, and equals what finish()
    then reports for the same connections."""
    path = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"
    decoder = Decoder()
    out = []
    meter = FlowMeter(out.append)
    for raw in read_batches(str(path)):
        meter.add(raw, decoder.decode(raw), None, decoder.tunnels)
    meter.flush()
    open_before = meter.open_connections
    snap = meter.snapshot()
    assert snap is not None and len(snap) == open_before == meter.open_connections
    meter.finish()
    final = {r[0]: r for fb in out[-1:] for r in fb.rows()}
    assert {r[0]: r for r in snap.rows()} == {uid: final[uid] for uid in (r[0] for r in snap.rows())}
