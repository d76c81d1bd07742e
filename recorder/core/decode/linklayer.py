"""Link-layer decapsulation for the decoder's slow path, following Zeek's packet analyzers.

``unwrap(buf, pos, end, linktype)`` walks the link-layer headers of one captured frame (or of
a frame carried in a tunnel) and says where the IP packet starts. Length checks mirror Zeek's
(``src/packet_analysis/protocol/*``), including its off-by-one ``N >= len`` tests, so a frame
Zeek calls truncated is malformed here too. The ethertype tables are Zeek's dispatch maps
(``scripts/base/packet-protocols/*/main.zeek``): a VLAN tag may carry MPLS or PPPoE, PPPoE only
IPv4/IPv6, and so on.

Deliberate differences from Zeek: LOOP (108) and Cisco HDLC (104) are decoded (Zeek has no
analyzer for them), NULL accepts either byte order, NFLOG TLVs are read little-endian unless
that is implausible, and a link type nobody knows is ``non_ip`` instead of a raw-IP guess.
"""

from __future__ import annotations

from struct import unpack_from

IP = 0
NON_IP = 1
MALFORMED = 2

# Link types (LINKTYPE_* values as stored in pcap/pcapng; 12 and 14 are DLT_RAW on some systems).
LT_NULL, LT_EN10MB, LT_PPP, LT_PPP_SERIAL, LT_RAW, LT_C_HDLC = 0, 1, 9, 50, 101, 104
LT_IEEE802_11, LT_LOOP, LT_LINUX_SLL, LT_RADIOTAP = 105, 108, 113, 127
LT_NFLOG, LT_IPV4, LT_IPV6, LT_LINUX_SLL2 = 239, 228, 229, 276
RAW_LINKTYPES = frozenset({LT_RAW, 12, 14, LT_IPV4, LT_IPV6})
NULL_FAMILIES = frozenset({2, 24, 28, 30})  # AF_INET, and AF_INET6 as BSDs and macOS number it

# Next-layer names used in the dispatch tables.
_IP, _ARP, _VLAN, _MPLS, _PPPOE, _VNTAG, _PBB = "ip", "arp", "vlan", "mpls", "pppoe", "vntag", "pbb"

ETHERNET_TYPES: dict[int, str] = {
    0x0800: _IP, 0x86DD: _IP, 0x0806: _ARP, 0x8035: _ARP, 0x8100: _VLAN, 0x88A8: _VLAN,
    0x9100: _VLAN, 0x8847: _MPLS, 0x8864: _PPPOE, 0x8926: _VNTAG, 0x88E7: _PBB,
}
# Zeek's VLAN map lacks QinQ outer types and VN-Tag; its own vntag_vlan_sandwich baseline
# decodes VLAN -> VN-Tag -> VLAN, so the VLAN table here accepts everything Ethernet does.
VLAN_TYPES: dict[int, str] = dict(ETHERNET_TYPES)
VNTAG_TYPES: dict[int, str] = {0x8100: _VLAN, 0x88A8: _VLAN, 0x9100: _VLAN}
PBB_TYPES: dict[int, str] = {
    0x0800: _IP, 0x86DD: _IP, 0x0806: _ARP, 0x8035: _ARP, 0x8100: _VLAN, 0x88A8: _VLAN,
    0x9100: _VLAN, 0x8864: _PPPOE,
}
SNAP_TYPES: dict[int, str] = {0x0800: _IP, 0x86DD: _IP, 0x0806: _ARP, 0x8035: _ARP}
PPPOE_TYPES: dict[int, str] = {0x0021: _IP, 0x0057: _IP}
PPP_TYPES: dict[int, str] = {0x0281: _MPLS, 0x0021: _IP, 0x0057: _IP}

_MAX_LAYERS = 25  # Zeek's PacketAnalyzer::max_depth

Result = tuple[int, list[tuple[int, int]], str]


def _u16(buf: bytes, p: int) -> int:
    return (buf[p] << 8) | buf[p + 1]


def _ip_at(p: int, end: int) -> Result:
    return IP, [(p, end)], ""


def _bad(reason: str) -> Result:
    return MALFORMED, [], reason


def _not_ip(reason: str) -> Result:
    return NON_IP, [], reason


def unwrap(buf: bytes, p: int, end: int, linktype: int) -> Result:
    """Return (status, [(ip_start, ip_end), ...], reason) for the frame ``buf[p:end]``.

    ``status`` is IP (one start, or several for an 802.11 A-MSDU), NON_IP or MALFORMED.
    """
    n = end - p
    if linktype == LT_EN10MB:
        return ethernet(buf, p, end, 0)
    if linktype in RAW_LINKTYPES:
        return _ip_at(p, end)
    if linktype == LT_LINUX_SLL:
        if 16 >= n:
            return _bad("truncated Linux SLL header")
        return _dispatch(buf, _u16(buf, p + 14), SNAP_TYPES, p + 16, end, 0)
    if linktype == LT_LINUX_SLL2:
        if 20 >= n:
            return _bad("truncated Linux SLL2 header")
        return _dispatch(buf, _u16(buf, p), SNAP_TYPES, p + 20, end, 0)
    if linktype in (LT_NULL, LT_LOOP):
        if 4 >= n:
            return _bad("truncated loopback header")
        fam = unpack_from(">I" if linktype == LT_LOOP else "<I", buf, p)[0]
        if linktype == LT_NULL and fam not in NULL_FAMILIES:
            fam = unpack_from(">I", buf, p)[0]  # written on a big-endian host
        return _ip_at(p + 4, end) if fam in NULL_FAMILIES else _not_ip(f"address family {fam}")
    if linktype == LT_PPP:
        if 2 >= n:
            return _bad("truncated PPP header")
        if buf[p] == 0xFF and buf[p + 1] == 0x03:
            if 4 >= n:
                return _bad("truncated PPP HDLC header")
            return _dispatch(buf, _u16(buf, p + 2), PPP_TYPES, p + 4, end, 0)
        return _dispatch(buf, _u16(buf, p), PPP_TYPES, p + 2, end, 0)
    if linktype == LT_PPP_SERIAL:
        if 4 >= n:
            return _bad("truncated PPP serial header")
        return _dispatch(buf, _u16(buf, p + 2), PPP_TYPES, p + 4, end, 0)
    if linktype == LT_C_HDLC:
        if 4 >= n:
            return _bad("truncated Cisco HDLC header")
        return _dispatch(buf, _u16(buf, p + 2), SNAP_TYPES, p + 4, end, 0)
    if linktype == LT_IEEE802_11:
        return ieee802_11(buf, p, end)
    if linktype == LT_RADIOTAP:
        if 3 >= n:
            return _bad("truncated radiotap header")
        rt_len = buf[p + 2] | (buf[p + 3] << 8)
        if rt_len >= n:
            return _bad("truncated radiotap header")
        return ieee802_11(buf, p + rt_len, end)
    if linktype == LT_NFLOG:
        return _nflog(buf, p, end)
    return _not_ip(f"unsupported link type {linktype}")


def ethernet(buf: bytes, p: int, end: int, depth: int) -> Result:
    n = end - p
    if 16 >= n:
        return _bad("truncated Ethernet frame")
    if buf[p + 12] == 0x89 and buf[p + 13] == 0x03:  # Cisco FabricPath outer header
        if 16 + 14 >= n:
            return _bad("truncated FabricPath header")
        p += 16
    etype = _u16(buf, p + 12)
    if etype >= 1536:
        return _dispatch(buf, etype, ETHERNET_TYPES, p + 14, end, depth)
    if etype <= 1500:  # 802.3 length field: LLC, SNAP or Novell raw
        p += 14
        if end - p < etype:
            return _bad("truncated 802.3 frame")
        return _llc(buf, p, end, depth)
    return _bad(f"undefined ethertype 0x{etype:04x}")


def _llc(buf: bytes, p: int, end: int, depth: int) -> Result:
    if end - p >= 2 and buf[p] == 0xAA and buf[p + 1] == 0xAA:
        return _snap(buf, p, end, depth)
    return _not_ip("802.2 LLC frame")


def _snap(buf: bytes, p: int, end: int, depth: int) -> Result:
    n = end - p
    if n < 3:
        return _bad("truncated SNAP header")
    hl = 3 if (buf[p + 2] & 0x03) == 0x03 else 4
    if n < hl + 5:
        return _bad("truncated SNAP header")
    oui = (buf[p + hl] << 16) | (buf[p + hl + 1] << 8) | buf[p + hl + 2]
    if oui != 0:
        return _not_ip(f"SNAP OUI {oui:06x}")
    return _dispatch(buf, _u16(buf, p + hl + 3), SNAP_TYPES, p + hl + 5, end, depth)


def _dispatch(buf: bytes, etype: int, table: dict[int, str], p: int, end: int, depth: int) -> Result:
    nxt = table.get(etype)
    if nxt == _IP:
        return _ip_at(p, end)
    if nxt is None or nxt == _ARP:
        return _not_ip(f"ethertype 0x{etype:04x}")
    if depth >= _MAX_LAYERS:
        return _bad("too many link-layer headers")
    n = end - p
    depth += 1
    if nxt == _VLAN:
        if 4 >= n:
            return _bad("truncated VLAN header")
        inner = _u16(buf, p + 2)
        if inner >= 1536:
            return _dispatch(buf, inner, VLAN_TYPES, p + 4, end, depth)
        if inner <= 1500:
            p += 4
            if end - p < 2:
                return _bad("truncated VLAN header")
            return _llc(buf, p, min(end, p + inner), depth)  # Zeek trims to the length field here
        return _bad(f"undefined VLAN protocol 0x{inner:04x}")
    if nxt == _MPLS:
        while True:
            if 4 >= end - p:
                return _bad("truncated MPLS label stack")
            bottom = buf[p + 2] & 0x01
            p += 4
            if bottom:
                return _ip_at(p, end)  # Zeek always hands the payload to its IP analyzer
    if nxt == _PPPOE:
        if 8 >= n:
            return _bad("truncated PPPoE header")
        return _dispatch(buf, _u16(buf, p + 6), PPPOE_TYPES, p + 8, end, depth)
    if nxt == _VNTAG:
        if 6 >= n:
            return _bad("truncated VN-Tag header")
        return _dispatch(buf, _u16(buf, p + 4), VNTAG_TYPES, p + 6, end, depth)
    # PBB (802.1ah): 4-byte I-TAG, customer MACs, then the customer ethertype.
    if 18 >= n:
        return _bad("truncated PBB header")
    return _dispatch(buf, _u16(buf, p + 16), PBB_TYPES, p + 18, end, depth)


def ieee802_11(buf: bytes, p: int, end: int) -> Result:
    n = end - p
    hl = 24
    if hl >= n:
        return _bad("truncated 802.11 header")
    fc = buf[p]
    if not (fc >> 2) & 0x02:
        return _not_ip("802.11 management/control frame")
    if (fc >> 4) & 0x04:
        return _not_ip("802.11 data frame without data")
    if (buf[p + 1] & 0x03) == 0x03:
        hl += 6
        if hl >= n:
            return _bad("truncated 802.11 header")
    amsdu = False
    if (fc >> 4) & 0x08:  # QoS data
        amsdu = (buf[p + hl] & 0x80) == 0x80
        if buf[p + 1] & 0x40:
            return _not_ip("802.11 protected frame")
        hl += 2
    if hl >= n:
        return _bad("truncated 802.11 header")
    p += hl
    if not amsdu:
        return _wifi_llc(buf, p, end)
    starts: list[tuple[int, int]] = []
    while p < end:
        if end - p < 14:
            return _bad("truncated 802.11 A-MSDU header")
        sub = _u16(buf, p + 12)
        if end - p < sub + 14:
            return _bad("truncated 802.11 A-MSDU subframe")
        st, ips, why = _wifi_llc(buf, p + 14, p + 14 + sub)
        if st != IP:
            return _bad(f"802.11 A-MSDU subframe: {why}")
        starts.extend(ips)
        p += 14 + sub
        pad = sub % 4
        if end - p >= pad:
            p += pad
    return (IP, starts, "") if starts else _not_ip("empty 802.11 A-MSDU")


def _wifi_llc(buf: bytes, p: int, end: int) -> Result:
    if end - p < 8:
        return _bad("truncated 802.11 LLC header")
    if buf[p:p + 6] != b"\xaa\xaa\x03\x00\x00\x00":
        return _not_ip("802.11 LLC frame without SNAP")
    return _dispatch(buf, _u16(buf, p + 6), SNAP_TYPES, p + 8, end, 0)


def _nflog(buf: bytes, p: int, end: int) -> Result:
    if 4 >= end - p:
        return _bad("truncated NFLOG header")
    family, version = buf[p], buf[p + 1]
    if version != 0:
        return _bad(f"NFLOG version {version}")
    p += 4
    while True:
        if 4 >= end - p:
            return _bad("NFLOG without packet payload")
        # TLV length and type are in the capturing host's byte order: little-endian unless
        # that reading is implausible (type > 255) and the big-endian one is not.
        tlv_len, tlv_type = unpack_from("<HH", buf, p)
        if tlv_type > 0xFF:
            be_len, be_type = unpack_from(">HH", buf, p)
            if be_type <= 0xFF:
                tlv_len, tlv_type = be_len, be_type
        if tlv_type == 9:  # NFULA_PAYLOAD
            p += 4
            break
        if tlv_len < 4:
            return _bad("bad NFLOG TLV length")
        p += (tlv_len + 3) & ~3
    if family in (2, 10):
        return _ip_at(p, end)
    return _not_ip(f"NFLOG family {family}")
