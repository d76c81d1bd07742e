"""Sharding an inspector by flow (``apps.inspection``): a flow's packets, both ways, and the
parsers' messages about it land in the same shard; the shards split the flows between them."""

from __future__ import annotations

import ipaddress

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recorder.core.apps.inspection import shard_of, shard_rows

M64 = (1 << 64) - 1
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
ports = st.integers(0, 65535)


def halves(text: str) -> tuple[int, int]:
    """The decoder's two 64-bit columns of an address (IPv4 as ::ffff:a.b.c.d)."""
    a = ipaddress.ip_address(text)
    v = (0xFFFF << 32 | int(a)) if a.version == 4 else int(a)
    return v >> 64, v & M64


def cols(rows: list[tuple[int, str, int, str, int]]) -> dict:
    out = {k: [] for k in ("proto", "src_hi", "src_lo", "dst_hi", "dst_lo", "sport", "dport")}
    for proto, src, sport, dst, dport in rows:
        for k, v in zip(out, (proto, *halves(src), *halves(dst), sport, dport)):
            out[k].append(v)
    types = {"proto": np.uint8, "sport": np.uint16, "dport": np.uint16}
    return {k: np.array(v, dtype=types.get(k, np.uint64)) for k, v in out.items()}


@settings(max_examples=200, deadline=None)
@given(proto=st.sampled_from([6, 17, 1, 58, 132]), a=addresses, ap=ports, b=addresses, bp=ports,
       n=st.integers(1, 8))
def test_both_directions_and_the_messages_share_a_shard(proto, a, ap, b, bp, n):
    shards = shard_rows(cols([(proto, a, ap, b, bp), (proto, b, bp, a, ap)]), n).tolist()
    assert shards[0] == shards[1]
    assert 0 <= shards[0] < n
    if proto in (6, 17):  # the parsers' messages (TCP and UDP connections)
        assert shard_of(proto, a, ap, b, bp, n) == shards[0]


def test_ports_tell_flows_apart_only_for_port_protocols():
    icmp = shard_rows(cols([(1, "10.0.0.1", 8, "10.0.0.2", 0), (1, "10.0.0.1", 0, "10.0.0.2", 0)]), 7).tolist()
    assert icmp[0] == icmp[1]  # an ICMP type/code in the port columns does not move the flow


def test_the_flows_are_spread_over_the_shards():
    rows = [(6, "10.0.0.5", p, "192.0.2.80", 443) for p in range(40000, 42000)]
    counts = np.bincount(shard_rows(cols(rows), 4), minlength=4)
    assert counts.min() > 300  # 500 each if even
