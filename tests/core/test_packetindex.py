"""The packet index's encoding: varints against a plain LEB128 writer, and ranges round-tripped."""

from __future__ import annotations

import numpy as np

from recorder.core.flow.indexformat import decode_ranges, flow_key
from recorder.core.flow.packetindex import encode_varints, key_hashes


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


def test_flow_key_without_numpy_equals_the_vectorised_key_of_either_direction():
    rng = np.random.default_rng(3)
    for proto in (6, 17, 1, 47, 58):
        for _ in range(50):
            a, b = (bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(2))
            if proto == 1:
                a = b"\0" * 10 + b"\xff\xff" + a[:4]  # an IPv4-mapped address
            pa, pb = (int(x) for x in rng.integers(0, 65536, 2))
            ha, la = divmod(int.from_bytes(a, "big"), 1 << 64)
            hb, lb = divmod(int.from_bytes(b, "big"), 1 << 64)
            cols = [np.array([v], dtype=np.uint64) for v in (proto, ha, la, pa, hb, lb, pb)]
            want = int(key_hashes(*cols)[0])
            assert flow_key(proto, a, pa, b, pb) == want == flow_key(proto, b, pb, a, pa)
            if proto not in (6, 17):  # ports do not count
                assert flow_key(proto, a, pa + 1, b, 0) == want


def test_key_order_is_numpys_stable_argsort():
    """The builder's bucket sort (indexkernel.key_order) gives the order of np.argsort(kind="stable")
    for hashes, for few keys repeated many times, for keys sharing their top bits (long runs,
    interleaved) and at the extremes of int64."""
    from recorder.core.flow.indexkernel import key_order

    rng = np.random.default_rng(11)
    same_top = (np.int64(0x1234) << np.int64(48)) + rng.integers(0, 5, 3000)
    cases = [rng.integers(-2**63, 2**63 - 1, 5000, dtype=np.int64), rng.integers(-3, 3, 5000).astype(np.int64),
             same_top, np.r_[same_top, rng.integers(-2**63, 2**63 - 1, 100, dtype=np.int64)],
             np.array([-1, 1, 0, -2**63, 2**63 - 1, 0, -1], dtype=np.int64), np.array([7], dtype=np.int64),
             np.zeros(0, dtype=np.int64)]
    for keys in cases:
        assert key_order(keys).tolist() == np.argsort(keys, kind="stable").tolist()
