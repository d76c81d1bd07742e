"""Decoder fuzzing: random bytes and mutated valid packets under every link type never raise.

Each example is decoded by a fast and a slow Decoder (``decode_both``), which must agree, and
no packet may be counted as an "internal error" (an exception caught inside the decoder).
"""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers.inet import IP, UDP

from tests.helpers.decode import (
    A4,
    B4,
    CUT_SAMPLES,
    ENCAPS,
    LINKTYPES,
    NON_IP,
    decode_both,
    eth,
    make_batch,
)

LINKTYPE_CHOICES = sorted({lt for lt, _ in LINKTYPES.values()} | {lt for lt, _ in NON_IP.values()} | {1, 50, 147})

TUNNELS = [
    eth(IP(src=A4, dst=B4) / UDP(sport=9, dport=port) / payload)
    for port, payload in [
        (4789, b"\x08\x00\x00\x00\x00\x00\x01\x00" + raw(eth(LINKTYPES["raw"][1]))),
        (6081, b"\x00\x00\x65\x58\x00\x00\x01\x00" + raw(eth(LINKTYPES["raw"][1]))),
        (3544, b"\x00\x00" + b"\x00" * 6 + LINKTYPES["ipv6"][1]),
        (5072, bytes([0x41, 0x52, 0x11, 4]) + b"\x00" * 40 + LINKTYPES["raw"][1]),
        (2152, bytes([0x34, 255]) + struct.pack(">HI", 0, 1) + b"\x00\x00\x00\x85\x01\xaa\xbb\x00"
         + LINKTYPES["raw"][1]),
        (4754, b"\x00\x00\x08\x00" + LINKTYPES["raw"][1]),
    ]
]
SEEDS: list[tuple[int, bytes]] = (
    [(1, raw(p)) for p in list(CUT_SAMPLES.values()) + list(ENCAPS.values()) + TUNNELS]
    + [(lt, p) for lt, p in LINKTYPES.values()]
)


@st.composite
def mutated(draw) -> tuple[int, bytes, int]:
    """A seed packet with a few bytes changed, inserted or removed, and maybe cut short."""
    linktype, pkt = draw(st.sampled_from(SEEDS))
    data = bytearray(pkt)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "set", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "set" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
    cut = draw(st.integers(0, len(data)))
    wire = cut + draw(st.sampled_from([0, 0, len(data) - cut, 7, 1500]))
    return linktype, bytes(data[:cut]), wire


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_mutated_packets_never_raise(packets):
    raw_batch = make_batch([p for _, p, _ in packets], [lt for lt, _, _ in packets],
                           wirelens=[w for _, _, w in packets])
    (out,), _ = decode_both(raw_batch)
    assert len({int(p) for p in out.cols["pkt"]}) + out.malformed + out.non_ip <= len(packets)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(LINKTYPE_CHOICES), st.binary(max_size=120)), min_size=1, max_size=6))
def test_random_bytes_never_raise(packets):
    (out,), _ = decode_both(make_batch([p for _, p in packets], [lt for lt, _ in packets]))
    assert out.malformed + out.non_ip + len({int(p) for p in out.cols["pkt"]}) <= len(packets)


@st.composite
def fragments(draw) -> bytes:
    """An IPv4 fragment of one of two datagrams, at a random offset, maybe the last one."""
    ident = draw(st.integers(1, 2))
    offset = draw(st.integers(0, 6))
    body = draw(st.binary(min_size=0, max_size=24))
    more = draw(st.booleans())
    proto = draw(st.sampled_from([17, 6, 4, 47]))
    return raw(eth(IP(src=A4, dst=B4, id=ident, proto=proto, frag=offset, flags="MF" if more else 0) / body))


@settings(max_examples=150, deadline=None)
@given(st.lists(fragments(), min_size=1, max_size=10))
def test_random_fragments_never_raise(frags):
    _outs, dec = decode_both(make_batch(frags[: len(frags) // 2]), make_batch(frags[len(frags) // 2:]))
    assert dec.stats.fragments_pending <= 2 * 7
