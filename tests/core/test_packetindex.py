"""The packet index's encoding: varints against a plain LEB128 writer, and ranges round-tripped."""

from __future__ import annotations

import numpy as np

from recorder.core.packetindex import decode_ranges, encode_varints


def leb128(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_varints_equal_a_plain_leb128_writer_at_every_width():
    edges = [0, 1, 127, 128, 255, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**35 - 1, 2**56, 2**63 - 1, 2**63, 2**64 - 1]
    rng = np.random.default_rng(7)
    rand = [int(x) >> int(s) for x, s in zip(rng.integers(0, 2**63, 2000, dtype=np.uint64), rng.integers(0, 63, 2000))]
    vals = edges + rand + edges[::-1]
    blob, sizes = encode_varints(np.array(vals, dtype=np.uint64))
    want = [leb128(v) for v in vals]
    assert blob == b"".join(want)
    assert sizes.tolist() == [len(w) for w in want]
    assert encode_varints(np.zeros(0, dtype=np.uint64))[0] == b""


def test_ranges_round_trip_through_gaps_and_doubled_lengths():
    ranges = [(24, 90, False), (114, 1514, True), (5_000_000_000, 70, False), (5_000_000_070, 65551, False)]
    vals, end = [], 0
    for i, (off, length, early) in enumerate(ranges):
        vals += [off - end if i else off, 2 * length + early]
        end = off + length
    blob, _ = encode_varints(np.array(vals, dtype=np.uint64))
    assert list(decode_ranges(blob)) == ranges
