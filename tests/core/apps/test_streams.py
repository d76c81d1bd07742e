"""TCP reassembly of one direction (recorder.core.apps.streams)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps.streams import Stream


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def data(self, b: bytes) -> None:
        self.events.append(("data", b))

    def gap(self, n: int) -> None:
        self.events.append(("gap", n))

    def text(self) -> bytes:
        """Delivered bytes with each gap as that many '?' bytes."""
        return b"".join(v if k == "data" else b"?" * v for k, v in self.events)


def stream(max_buffer: int = 1 << 20) -> tuple[Stream, Sink]:
    sink = Sink()
    return Stream(sink.data, sink.gap, max_buffer), sink


def test_in_order_from_syn() -> None:
    s, sink = stream()
    s.start(1000, syn=True)
    s.add(1001, b"hello ")
    s.add(1007, b"world")
    assert sink.events == [("data", b"hello "), ("data", b"world")]
    assert s.delivered == 11 and s.gaps == 0


def test_starts_at_first_segment_mid_connection() -> None:
    s, sink = stream()
    s.add(5000, b"abc")  # no SYN seen: the first segment starts delivery
    s.add(5003, b"def")
    assert sink.text() == b"abcdef"


def test_out_of_order_is_buffered_then_delivered() -> None:
    s, sink = stream()
    s.start(0, syn=True)
    s.add(7, b"world")
    assert sink.events == [] and s.buffered == 5
    s.add(1, b"hello ")
    assert sink.text() == b"hello world"
    assert s.buffered == 0


def test_retransmission_and_overlap_keep_first_copy() -> None:
    s, sink = stream()
    s.start(0, syn=True)
    s.add(1, b"abcdef")
    s.add(1, b"XXXXXX")  # full retransmission with other bytes: delivered data wins
    s.add(4, b"YYYghi")  # overlaps the tail: only the new part is taken
    assert sink.text() == b"abcdefghi"
    # overlaps among buffered segments: the first buffered copy wins as well
    s.add(20, b"1234")
    s.add(18, b"ZZZZZZZZ")
    s.add(10, b"jklmnopq")
    assert sink.text() == b"abcdefghijklmnopqZZ1234ZZ"


def test_sequence_wraparound() -> None:
    s, sink = stream()
    isn = 0xFFFFFFF0
    s.start(isn, syn=True)
    s.add(isn + 1, b"A" * 10)  # crosses 2**32 at byte 15
    s.add((isn + 21) & 0xFFFFFFFF, b"C" * 5)  # after the wrap, out of order
    s.add((isn + 11) & 0xFFFFFFFF, b"B" * 10)
    assert sink.text() == b"A" * 10 + b"B" * 10 + b"C" * 5


def test_gap_reported_at_flush_then_delivery_continues() -> None:
    s, sink = stream()
    s.start(0, syn=True)
    s.add(1, b"abc")
    s.add(10, b"xyz")  # bytes 4..9 never arrive
    assert sink.text() == b"abc"
    s.flush()
    assert sink.events == [("data", b"abc"), ("gap", 6), ("data", b"xyz")]
    s.add(13, b"more")
    assert sink.text() == b"abc??????xyzmore"
    assert s.gaps == 6 and s.buffered == 0


def test_buffer_bound_reports_gap_early() -> None:
    s, sink = stream(max_buffer=10)
    s.start(0, syn=True)
    s.add(101, b"a" * 6)  # hole of 100 bytes
    assert sink.events == []
    s.add(107, b"b" * 6)  # 12 buffered > 10: the hole is given up
    assert sink.events == [("gap", 100), ("data", b"a" * 6), ("data", b"b" * 6)]
    assert s.buffered == 0


def test_truncated_segment_becomes_gap() -> None:
    s, sink = stream()
    s.start(0, syn=True)
    s.add(1, b"abcd", length=10)  # snaplen cut the segment: 6 bytes were never captured
    s.add(11, b"next")
    assert sink.events == [("data", b"abcd"), ("gap", 6), ("data", b"next")]


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=1, max_size=400), st.integers(0, 0xFFFFFFFF), st.data())
def test_any_segmentation_and_order_reassembles(payload: bytes, isn: int, data) -> None:
    """Cut the payload into overlapping segments, shuffle, duplicate: the bytes come back whole."""
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(payload)), max_size=20))) | {0, len(payload)})
    segs = []
    for a, b in zip(cuts, cuts[1:]):
        lo = max(0, a - data.draw(st.integers(0, 5)))  # overlap with the previous piece
        segs.append((lo, payload[lo:b]))
    segs += data.draw(st.lists(st.sampled_from(segs), max_size=5))  # retransmissions
    order = data.draw(st.permutations(segs))
    s, sink = stream()
    s.start(isn, syn=True)
    for off, chunk in order:
        s.add((isn + 1 + off) & 0xFFFFFFFF, chunk)
    s.flush()
    assert sink.text() == payload
    assert s.delivered == len(payload) and s.gaps == 0 and s.buffered == 0


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.binary(max_size=300)), max_size=30),
       st.integers(0, 0xFFFFFFFF), st.integers(1, 2000))
def test_arbitrary_segments_keep_the_accounting(segs, isn: int, bound: int) -> None:
    """Whatever arrives: deliveries and gaps tile the stream, and the buffer stays bounded."""
    s, sink = stream(max_buffer=bound)
    s.start(isn, syn=True)
    for off, chunk in segs:
        s.add((isn + 1 + off) & 0xFFFFFFFF, chunk)
        assert s.buffered <= bound
    s.flush()
    total = sum(len(v) if k == "data" else v for k, v in sink.events)
    assert total == s.delivered + s.gaps
    assert s.next - ((isn + 1) & 0xFFFFFFFF) == total
    assert s.buffered == 0
