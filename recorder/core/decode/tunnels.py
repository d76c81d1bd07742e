"""Tunnel header parsing for the decoder's slow path, with Zeek's rules for when a tunnel is one.

Zeek hands a UDP payload to a tunnel analyzer by the *responder* port of the UDP connection
(VXLAN 4789, Geneve 6081, Teredo 3544, AYIYA 5072, GTPv1 2152 and 2123, GRE 4754). If that port
has no tunnel analyzer it tries protocol detection: Teredo and AYIYA are recognised on any port
by their first bytes. A tunnel analyzer that rejects a packet ("analyzer violation") is switched
off for the rest of that connection, except GTPv1 which judges every packet afresh.

Every parser here returns ``(code, start, length, link)``: code OK with the inner packet's
position and link layer (``LINK_ETH``, ``LINK_IP`` or ``LINK_WIFI``), NONE (no inner packet,
no harm done) or VIOLATION.
"""

from __future__ import annotations

from collections import OrderedDict
from struct import unpack_from

from recorder.core.decode.iphdr import exact_ip, ipv6_chain
from recorder.core.flow.flowid import LIKELY_SERVER_UDP

OK, NONE, VIOLATION = 0, 1, 2
LINK_ETH, LINK_IP, LINK_WIFI = "eth", "ip", "wifi"

MAX_TUNNEL_DEPTH = 4  # Zeek's Tunnel::max_depth

UDP_TUNNEL_PORTS: dict[int, str] = {
    4789: "VXLAN", 6081: "GENEVE", 3544: "TEREDO", 5072: "AYIYA", 2152: "GTPV1", 2123: "GTPV1",
    4754: "GRE",
}

# UDP ports Zeek lists in likely_server_ports: they decide which side of a new UDP connection is
# the responder, and so whether a tunnel port is the responder's. The flow meter's table, plus
# every tunnel port (Zeek registers those as server ports too).
LIKELY_SERVER_UDP_PORTS = LIKELY_SERVER_UDP | frozenset(UDP_TUNNEL_PORTS)

UDP_CONN_TIMEOUT_NS = 60 * 10**9  # Zeek's udp_inactivity_timeout

_Parsed = tuple[int, int, int, str]
_NONE: _Parsed = (NONE, 0, 0, "")
_VIOLATION: _Parsed = (VIOLATION, 0, 0, "")

GRE_ETH_TYPES = {0x6558}
ERSPAN_TYPES = {0x88BE, 0x22EB}


class UdpConnTable:
    """Which port is the responder's, for UDP connections touching a tunnel port.

    Zeek's UDP analyzer makes the first packet's sender the originator unless its source port is
    a likely server port and the destination port is not. Entries expire after Zeek's UDP
    inactivity timeout; the table is bounded (least recently used entries go first).
    """

    def __init__(self, max_entries: int = 65536) -> None:
        self.max_entries = max_entries
        self._conns: OrderedDict[tuple, list[int]] = OrderedDict()

    def responder_port(self, key: tuple, sport: int, dport: int, dst_broadcast: bool, ts: int) -> int:
        ent = self._conns.get(key)
        if ent is not None and ts - ent[1] <= UDP_CONN_TIMEOUT_NS:
            ent[1] = ts
            self._conns.move_to_end(key)
            return ent[0]
        flip = (sport in LIKELY_SERVER_UDP_PORTS and dport not in LIKELY_SERVER_UDP_PORTS
                and not dst_broadcast)
        resp = sport if flip else dport
        self._conns[key] = [resp, ts]
        self._conns.move_to_end(key)
        while len(self._conns) > self.max_entries:
            self._conns.popitem(last=False)
        return resp


def teredo_detect(buf: bytes, p: int, n: int) -> bool:
    """Zeek's TeredoAnalyzer::DetectProtocol (used on UDP ports without a tunnel analyzer)."""
    if n < 40:
        return False
    d0, d1 = buf[p], buf[p + 1]
    if (d0 >> 4) != 6 and (d0 != 0 or (d1 != 0 and d1 != 1)):
        return False
    if 0x60 <= d0 <= 0x6F and (buf[p + 8:p + 12] == b"\x20\x01\x00\x00"
                               or buf[p + 24:p + 28] == b"\x20\x01\x00\x00"):
        return True
    val = d1
    if val == 1:  # authentication header, then expect an origin indication
        skip = 13 + buf[p + 2] + buf[p + 3]
        if n < skip:
            return False
        p += skip
        n -= skip
        if n < 40:
            return False
        val = (buf[p] << 8) | buf[p + 1]
    if val == 0:
        if n < 8:
            return False
        p += 8
        n -= 8
        return n >= 40 and (buf[p] >> 4) == 6
    return False


def ayiya_detect(buf: bytes, p: int, n: int) -> bool:
    return n >= 3 and buf[p + 1] == 0x52 and buf[p + 2] == 0x11


def parse_vxlan(buf: bytes, p: int, n: int) -> _Parsed:
    if n < 8 or not buf[p] & 0x08:
        return _VIOLATION
    if n == 8:
        return _NONE
    return OK, p + 8, n - 8, LINK_ETH


def parse_geneve(buf: bytes, p: int, n: int) -> _Parsed:
    if n < 8:
        return _VIOLATION
    if buf[p] >> 6:
        return _NONE  # unknown version: a weird, not a violation
    hl = 8 + (buf[p] & 0x3F) * 4
    if hl > n:
        return _VIOLATION
    if hl == n:
        return _NONE
    proto = (buf[p + 2] << 8) | buf[p + 3]
    if proto == 0x6558:
        return OK, p + hl, n - hl, LINK_ETH
    if proto in (0x0800, 0x86DD):
        return OK, p + hl, n - hl, LINK_IP
    return _NONE


def parse_ayiya(buf: bytes, p: int, n: int) -> _Parsed:
    if n < 8:
        return _VIOLATION
    hl = 8 + (1 << (buf[p] >> 4)) + (buf[p + 1] >> 4) * 4
    if hl > n:
        return _VIOLATION
    if buf[p + 2] & 0x0F != 1:  # only "forward" messages carry a packet
        return _NONE
    if hl == n or buf[p + 3] not in (4, 41):
        return _NONE
    return OK, p + hl, n - hl, LINK_IP


def parse_teredo(buf: bytes, p: int, n: int) -> _Parsed:
    origin = auth = False
    while True:
        if n < 2:
            return _VIOLATION
        tag = (buf[p] << 8) | buf[p + 1]
        if tag == 0:  # origin indication
            if origin or n < 8:
                return _VIOLATION
            origin = True
            p += 8
            n -= 8
        elif tag == 1:  # authentication
            if origin or auth or n < 4:
                return _VIOLATION
            tot = 4 + buf[p + 2] + buf[p + 3] + 9
            if n < tot:
                return _VIOLATION
            auth = True
            p += tot
            n -= tot
        elif tag >> 12 == 6:
            break
        else:
            return _VIOLATION
    if n < 40:
        return _VIOLATION
    chain_len, nxt = ipv6_chain(buf, p, n)[:2]
    total = ((buf[p + 4] << 8) | buf[p + 5]) + 40
    if n < total:
        return _VIOLATION
    if n > total and not (nxt == 59 and total - chain_len == 0):
        return _VIOLATION  # only a bubble may carry trailing bytes
    return OK, p, n, LINK_IP


def parse_gtpv1(buf: bytes, p: int, n: int, in_gtp: bool) -> _Parsed:
    """GTPv1-U G-PDU (message type 255) as Zeek's binpac grammar reads it."""
    if n < 8:
        return _VIOLATION
    flags, msg = buf[p], buf[p + 1]
    hl = 8
    if flags & 0x07:  # sequence number, N-PDU number, next extension type
        hl += 4
        if hl > n:
            return _VIOLATION
    if flags & 0x04:  # extension headers: length in 4-byte units, contents, next type
        while True:
            if hl >= n:
                return _VIOLATION
            units = buf[p + hl]
            if units == 0 or hl + units * 4 > n:
                return _VIOLATION
            hl += units * 4
            if buf[p + hl - 1] == 0:
                break
    if in_gtp or flags >> 5 != 1:
        return _VIOLATION  # GTP inside GTP, or not version 1
    if not flags & 0x10 or msg != 255:
        return _NONE  # GTP' or a control message: no user packet
    inner = n - hl
    if inner < 20 or buf[p + hl] >> 4 not in (4, 6):
        return _VIOLATION
    if not exact_ip(buf, p + hl, inner, buf[p + hl] >> 4):
        return _VIOLATION
    return OK, p + hl, inner, LINK_IP


def parse_gre(buf: bytes, p: int, n: int) -> tuple[str, int, int, str, int]:
    """A GRE header as Zeek's GRE analyzer reads it.

    Returns (error, start, length, link, exact_version): error is "" when there is an inner
    packet at ``start``; ``exact_version`` is 4 or 6 when the inner packet must be exactly that
    IP version filling the rest (enhanced GRE), else 0.
    """
    if n < 4:
        return "truncated GRE header", 0, 0, "", 0
    flags, proto = unpack_from(">HH", buf, p)
    ver = flags & 0x07
    gl = 4 + 4 * (bool(flags & 0x8000) + bool(flags & 0x2000) + bool(flags & 0x1000)
                  + bool(flags & 0x0080))
    if ver > 1:
        return f"GRE version {ver}", 0, 0, "", 0
    eth = erspan = 0
    ppp = 4 if ver == 1 else 0
    link = LINK_IP
    if ver == 0:
        if proto == 0x6558:
            if n <= gl + 14:
                return "truncated GRE header", 0, 0, "", 0
            eth, link = 14, LINK_ETH
        elif proto == 0x88BE:  # ERSPAN type II (with sequence number) or type I
            if n <= gl + 14:
                return "truncated ERSPAN header", 0, 0, "", 0
            eth, link = 14, LINK_ETH
            if flags & 0x1000:
                erspan = 8
        elif proto == 0x22EB:  # ERSPAN type III, optional 8-byte platform sub-header
            if n <= gl + 14 + 12:
                return "truncated ERSPAN header", 0, 0, "", 0
            eth, erspan, link = 14, 12, LINK_ETH
            if buf[p + gl + 11] & 0x01:
                if n <= gl + 12 + 8 + 14:
                    return "truncated ERSPAN header", 0, 0, "", 0
                erspan += 8
        elif ((proto & 0x8200) == 0x8200 and not proto & 0x0F) or (
                (proto & 0x8300) == 0x8300 and not proto & 0x0F and proto <= 0x8370) or proto == 0x9000:
            if n <= gl:
                return "truncated GRE header", 0, 0, "", 0
            link = LINK_WIFI  # Aruba
    elif proto != 0x880B:
        return f"enhanced GRE protocol 0x{proto:04x}", 0, 0, "", 0
    if flags & 0x4000:
        return "GRE routing present", 0, 0, "", 0
    if flags & 0x0078:
        return "unknown GRE flags", 0, 0, "", 0
    if n < gl + ppp + eth + erspan:
        return "truncated GRE header", 0, 0, "", 0
    exact = 0
    if ver == 1:
        ppp_proto = (buf[p + gl + 2] << 8) | buf[p + gl + 3]
        if ppp_proto not in (0x0021, 0x0057):
            return f"PPP protocol 0x{ppp_proto:04x} in GRE", 0, 0, "", 0
        exact = 4 if ppp_proto == 0x0021 else 6
    skip = gl + ppp + erspan
    return "", p + skip, n - skip, link, exact
