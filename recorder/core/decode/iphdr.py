"""IP header helpers shared by the decoder, the tunnel parsers and fragment reassembly."""

from __future__ import annotations

# IPv6 extension headers Zeek follows (IPv6_Hdr_Chain): hop-by-hop, routing, fragment, ESP,
# AH, destination options. The chain stops after a fragment or ESP header.
HOPOPTS, ROUTING, FRAGMENT, ESP, AH, NONE, DSTOPTS = 0, 43, 44, 50, 51, 59, 60
IPV6_EXT = frozenset({HOPOPTS, ROUTING, FRAGMENT, ESP, AH, DSTOPTS})


def ipv6_chain(buf: bytes, p: int, n: int) -> tuple[int, int, int, int, int, int]:
    """Walk the IPv6 header chain of the packet at ``p`` with ``n`` bytes captured (n >= 40).

    Returns (header length, next protocol, last header type, position of the last header,
    position of the next-header byte that points at the last header, position of the
    destination address). As in Zeek, a header that is not fully captured ends the chain without
    being counted, so the next protocol is then that header's type; the last header type is 41
    when there are no extension headers; and a type 0 routing header with segments left makes
    its last address the destination (Zeek's final destination).
    """
    length = 40
    cur = 41
    nxt = buf[p + 6]
    last_pos = p
    nh_pos = p + 6
    prev_nh = p + 6
    remaining = n - 40
    q = p + 40
    dst = p + 24
    while cur != FRAGMENT and cur != ESP and nxt in IPV6_EXT:
        if remaining < 2:
            break
        if nxt == FRAGMENT or nxt == ESP:
            hl = 8
        elif nxt == AH:
            hl = 8 + 4 * buf[q + 1]
        else:
            hl = 8 + 8 * buf[q + 1]
        if hl > remaining:
            break
        cur = nxt
        if cur == ROUTING and dst == p + 24:  # Zeek honours the first type 0 header only
            units, rtype, segleft = buf[q + 1], buf[q + 2], buf[q + 3]
            if rtype == 0 and segleft > 0 and units >= 2 and units % 2 == 0:
                dst = q + hl - 16
        prev_nh = nh_pos
        nxt = NONE if cur == ESP else buf[q]
        last_pos = q
        nh_pos = q
        q += hl
        length += hl
        remaining -= hl
    return length, nxt, cur, last_pos, prev_nh, dst


def exact_ip(buf: bytes, p: int, n: int, version: int) -> bool:
    """Zeek's IP::ParsePacket: an IP packet of ``version`` that fills exactly ``n`` bytes."""
    if version == 6:
        if n < 40 or buf[p] >> 4 != 6:
            return False
        return ((buf[p + 4] << 8) | buf[p + 5]) + 40 == n
    if n < 20 or buf[p] >> 4 != 4:
        return False
    return ((buf[p + 2] << 8) | buf[p + 3]) == n


def addr16(buf: bytes, p: int, version: int) -> bytes:
    """A source or destination address as 16 bytes (IPv4 as ::ffff:a.b.c.d)."""
    if version == 4:
        return b"\x00" * 10 + b"\xff\xff" + bytes(buf[p:p + 4])
    return bytes(buf[p:p + 16])
