"""A batch handed to the application layer's or an inspector's process: its packets' bytes read
from their span of the capture file when they lie there unchanged (pipeline.batches: batch_message and
SpanReader), through the pipe otherwise, with the same payload at every row either way."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from recorder.core.capio.pcapio import read_batches
from recorder.core.decode.decode import Decoder
from recorder.core.errors import CaptureError
from recorder.core.pipeline.batches import SpanReader, batch_message

DEMO = Path(__file__).resolve().parents[2] / "captures" / "demo.pcap"


def _payloads(cols: dict, payloads: dict, data: bytes) -> list[bytes]:
    out = []
    for i, (off, cap) in enumerate(zip(cols["pay_off"].tolist(), cols["pay_cap"].tolist())):
        out.append(data[off:off + cap] if off >= 0 else payloads.get(i, b"") if off == -2 else b"")
    return out


class _Pipe:
    """The receiving end of a pipe (``recv_bytes``), in this process."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def recv_bytes(self) -> bytes:
        return self.sent.pop(0)


def _received(path: str, batch_size: int = 64) -> tuple[list, list]:
    """(what the receiver sees, what the sender had): per batch, the span and every row's payload."""
    dec = Decoder(fast=True)
    seen, sent = [], []
    pipe = _Pipe()
    reader = SpanReader()
    try:
        for raw in read_batches(path, batch_size=batch_size):
            d = dec.decode(raw)
            sent.append(_payloads(d.cols, d.payloads, raw.data))
            head, data = batch_message(raw, d)
            if data is not None:
                pipe.sent.append(data)
            _, n, _ts, cols, payloads, span = pickle.loads(head)
            assert n == len(raw)
            seen.append((span, _payloads(cols, payloads, reader.data(span, pipe))))
    finally:
        reader.close()
    assert not pipe.sent  # every batch's bytes read, once
    return seen, sent


def test_a_plain_pcap_is_read_from_the_file_with_the_same_payloads():
    seen, sent = _received(str(DEMO))
    assert len(seen) > 2
    assert all(span is not None and span[0] == str(DEMO) for span, _ in seen)
    assert [p for _, p in seen] == sent
    assert sum(1 for batch in sent for p in batch if p) > 50  # payloads were there to compare


def test_a_compressed_capture_goes_through_the_pipe(tmp_path):
    gz = tmp_path / "demo.pcap.gz"
    with open(DEMO, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    seen, sent = _received(str(gz))
    assert all(span is None for span, _ in seen)
    assert [p for _, p in seen] == sent


def test_a_capture_cut_short_meanwhile_is_a_one_line_error(tmp_path):
    cap = tmp_path / "cut.pcap"
    shutil.copy(DEMO, cap)
    raw = next(read_batches(str(cap), batch_size=1000))
    head, data = batch_message(raw, Decoder(fast=True).decode(raw))
    assert data is None
    span = pickle.loads(head)[5]
    with open(cap, "r+b") as f:
        f.truncate(span[1] + span[2] - 100)
    reader = SpanReader()
    with pytest.raises(CaptureError) as err:
        reader.data(span, None)
    reader.close()
    assert str(err.value) == f"{cap}, offset {span[1] + span[2] - 100}: the capture became shorter while it was read"
    cap.unlink()
    with pytest.raises(CaptureError, match="cannot read the capture again: No such file"):
        SpanReader().data(span, None)


def test_payload_offsets_move_into_the_span():
    raw = next(read_batches(str(DEMO), batch_size=1000))
    d = Decoder(fast=True).decode(raw)
    _, _, _, cols, _, span = pickle.loads(batch_message(raw, d)[0])
    has = d.cols["pay_off"] >= 0
    assert has.any()
    # packet i's bytes start 16 bytes after its record header in the file, the span at the first record
    moved = d.cols["pay_off"][has] + (raw.file_off + 16 - span[1] - raw.off)[d.cols["pkt"][has]]
    assert np.array_equal(cols["pay_off"][has], moved)
    assert np.array_equal(cols["pay_off"][~has], d.cols["pay_off"][~has])
