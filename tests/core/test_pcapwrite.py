"""pcap records of a batch (recorder.core.capio.pcapwrite): the packer, compiled or as Python,
against a record built with struct for each packet."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.batch import RawBatch
from recorder.core.capio import pcapwrite
from recorder.core.capio.pcapwrite import encode_records, pack_records

U32 = 0xFFFFFFFF


def reference(raw: RawBatch, lo: int, hi: int) -> bytes:
    """Packets lo:hi as pcap records, one struct.pack per header (microseconds; each field's
    low 32 bits, as a record holds them)."""
    out = []
    for i in range(lo, hi):
        ts, o, c = int(raw.ts[i]), int(raw.off[i]), int(raw.caplen[i])
        out.append(struct.pack("<IIII", (ts // 1_000_000_000) & U32, (ts % 1_000_000_000) // 1000, c,
                               int(raw.wirelen[i]) & U32))
        out.append(raw.data[o:o + c])
    return b"".join(out)


@st.composite
def batches(draw) -> RawBatch:
    """Packets back to back (as libpcap gives them) or with gaps between them and in any order
    in ``data`` (as the reader's batches, whose data holds the record headers too)."""
    bodies = draw(st.lists(st.binary(max_size=80), min_size=1, max_size=40))
    n = len(bodies)
    gaps = draw(st.one_of(st.just([0] * n), st.lists(st.integers(0, 20), min_size=n, max_size=n)))
    order = draw(st.permutations(range(n))) if draw(st.booleans()) else list(range(n))
    data, off = bytearray(), [0] * n
    for i in order:
        data += b"\xee" * gaps[i]
        off[i] = len(data)
        data += bodies[i]
    data += b"\xee" * draw(st.integers(0, 5))
    ts = draw(st.lists(st.integers(0, 2**63 - 1), min_size=n, max_size=n))
    wirelen = [len(b) + draw(st.integers(0, 2**33)) for b in bodies]
    arr = lambda v: np.array(v, dtype=np.int64)  # noqa: E731
    return RawBatch("t", bytes(data), arr(off), arr([len(b) for b in bodies]), arr(wirelen), arr(ts),
                    np.ones(n, dtype=np.int64), np.full(n, -1, dtype=np.int64), np.arange(n, dtype=np.int64))


@settings(max_examples=300, deadline=None)
@given(raw=batches(), data=st.data())
def test_records_equal_one_struct_pack_per_packet(raw, data):
    n = len(raw)
    lo = data.draw(st.integers(0, n - 1))
    hi = data.draw(st.integers(lo + 1, n))
    want = reference(raw, lo, hi)
    assert encode_records(raw, lo, hi) == want
    assert encode_records(raw) == reference(raw, 0, n)
    blob, rel = pack_records(raw, lo, hi)
    assert bytes(blob) == want
    assert rel.tolist() == [sum(16 + int(c) for c in raw.caplen[lo:i]) for i in range(lo, hi)]
    # the loop itself, compiled or not (as Python, pack_records uses numpy instead)
    out = np.empty(len(want), dtype=np.uint8)
    pcapwrite._pack(np.frombuffer(raw.data, dtype=np.uint8), raw.off[lo:hi], raw.caplen[lo:hi], raw.ts[lo:hi],
                    raw.wirelen[lo:hi], out)
    assert out.tobytes() == want


def test_empty_range_is_no_bytes():
    raw = RawBatch("t", b"abc", np.array([0]), np.array([3]), np.array([3]), np.array([0]), np.array([1]),
                   np.array([-1]), np.array([0]))
    assert encode_records(raw, 1, 1) == b""


@pytest.mark.parametrize(("off", "cap"), [(2, 3), (4, 1), (-1, 1), (0, -1)])
def test_a_packet_outside_the_data_raises(off, cap):
    """Not a short record, nor a byte repeated (a slice one byte long would broadcast)."""
    data = np.frombuffer(b"abcd", dtype=np.uint8)
    out = np.zeros(16 + max(cap, 0), dtype=np.uint8)
    i64 = lambda v: np.array([v], dtype=np.int64)  # noqa: E731
    with pytest.raises(ValueError, match="not inside"):
        pcapwrite._pack(data, i64(off), i64(cap), i64(0), i64(max(cap, 0)), out)
