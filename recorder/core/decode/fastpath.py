"""The decoder's vectorised fast path: the common case for a whole batch at once.

Accepted here, with no Python per packet: Ethernet (optionally one 802.1Q tag), raw IP, Linux
SLL and little-endian NULL frames carrying an unfragmented IPv4 packet (any header length) with
TCP, UDP or ICMP, or an IPv6 packet whose next header is directly TCP, UDP or ICMPv6; transport
header complete; UDP on no tunnel port and not looking like Teredo or AYIYA (Zeek detects those
on any port). Ethernet ARP frames are counted as non-IP here too. Everything else goes to the
slow path, which must (and is tested to) give identical rows for what both accept.

Header fields are gathered with fancy indexing from overlapping strided views of the batch's
buffer: ``be32[i]`` is the big-endian 32-bit word starting at byte ``i``.
"""

from __future__ import annotations

import numpy as np

from recorder.core.batch import DECODED_COLUMNS, RawBatch
from recorder.core.decode.linklayer import RAW_LINKTYPES
from recorder.core.decode.tunnels import UDP_TUNNEL_PORTS

_V4_MAPPED = np.uint64(0xFFFF00000000)
_TUNNEL_LUT = np.zeros(65536, dtype=bool)
_TUNNEL_LUT[list(UDP_TUNNEL_PORTS)] = True
_RAW_LT = np.array(sorted(RAW_LINKTYPES), dtype=np.int64)


class _Gather:
    """Big-endian field reads at arbitrary byte offsets of one buffer (indices clipped)."""

    def __init__(self, data: bytes) -> None:
        n = len(data)
        self.u8 = np.frombuffer(data, dtype=np.uint8)
        self.b16 = np.ndarray(shape=(n - 1,), dtype=">u2", buffer=data, strides=(1,))
        self.b32 = np.ndarray(shape=(n - 3,), dtype=">u4", buffer=data, strides=(1,))
        self.b64 = np.ndarray(shape=(n - 7,), dtype=">u8", buffer=data, strides=(1,))

    def u16(self, idx: np.ndarray) -> np.ndarray:
        return self.b16[np.minimum(idx, len(self.b16) - 1)].astype(np.int64)

    def u32(self, idx: np.ndarray) -> np.ndarray:
        return self.b32[np.minimum(idx, len(self.b32) - 1)].astype(np.int64)

    def u64(self, idx: np.ndarray) -> np.ndarray:
        return self.b64[np.minimum(idx, len(self.b64) - 1)].astype(np.uint64)

    def i64(self, idx: np.ndarray) -> np.ndarray:
        """Eight bytes as int64 (the top bit wraps: mask after shifting)."""
        return self.b64[np.minimum(idx, len(self.b64) - 1)].astype(np.int64)


def decode_fast(raw: RawBatch) -> tuple[dict[str, np.ndarray] | None, np.ndarray, int]:
    """Return (columns of the rows decoded here or None, mask of packets handled, non-IP count)."""
    n = len(raw)
    handled = np.zeros(n, dtype=bool)
    if n == 0 or len(raw.data) < 64:
        return None, handled, 0
    g = _Gather(raw.data)
    off = np.asarray(raw.off, dtype=np.int64)
    cap = np.asarray(raw.caplen, dtype=np.int64)
    wire = np.asarray(raw.wirelen, dtype=np.int64)
    lt = np.asarray(raw.linktype, dtype=np.int64)

    # -- link layer: where the IP header starts (-1: leave to the slow path) --------------------
    l3 = np.full(n, -1, dtype=np.int64)
    nonip = np.zeros(n, dtype=bool)
    ie = np.flatnonzero((lt == 1) & (cap > 16))
    if len(ie):
        et = g.u16(off[ie] + 12)
        ip = (et == 0x0800) | (et == 0x86DD)
        l3[ie[ip]] = off[ie[ip]] + 14
        nonip[ie[(et == 0x0806) | (et == 0x8035)]] = True
        iv = ie[(et == 0x8100) & (cap[ie] > 18)]
        if len(iv):
            et2 = g.u16(off[iv] + 16)
            iv = iv[(et2 == 0x0800) | (et2 == 0x86DD)]
            l3[iv] = off[iv] + 18
    iraw = np.flatnonzero(np.isin(lt, _RAW_LT))
    l3[iraw] = off[iraw]
    isll = np.flatnonzero((lt == 113) & (cap > 16))
    if len(isll):
        et = g.u16(off[isll] + 14)
        ip = (et == 0x0800) | (et == 0x86DD)
        l3[isll[ip]] = off[isll[ip]] + 16
        nonip[isll[(et == 0x0806) | (et == 0x8035)]] = True
    inull = np.flatnonzero((lt == 0) & (cap > 4))
    if len(inull):
        fam = g.u32(off[inull]).astype(np.uint32).byteswap().astype(np.int64)
        inull = inull[(fam == 2) | (fam == 24) | (fam == 28) | (fam == 30)]
        l3[inull] = off[inull] + 4
    handled |= nonip

    # -- IP -------------------------------------------------------------------------------------
    ii = np.flatnonzero(l3 >= 0)
    if not len(ii):
        return None, handled, int(nonip.sum())
    p = l3[ii]
    o = off[ii]
    cap_rem = o + cap[ii] - p
    wire_rem = wire[ii] - (p - o)
    q = g.i64(p)
    w0 = (q >> 32) & 0xFFFFFFFF
    w1 = q & 0xFFFFFFFF
    ver = w0 >> 28
    ihl = ((w0 >> 24) & 0x0F) * 4
    total = w0 & 0xFFFF
    proto = (g.u32(p + 8) >> 16) & 0xFF
    ok = ((ver == 4) & (cap_rem >= 20) & (ihl >= 20) & (total != 0) & (wire_rem >= total)
          & (ihl <= total) & (ihl <= cap_rem) & ((w1 & 0x3FFF) == 0)
          & ((proto == 6) | (proto == 17) | (proto == 1)))
    is6 = ver == 6
    if is6.any():
        tot6 = (w1 >> 16) + 40
        nh6 = (w1 >> 8) & 0xFF
        ok6 = is6 & (cap_rem >= 40) & (wire_rem >= tot6) & ((nh6 == 6) | (nh6 == 17) | (nh6 == 58))
        ihl = np.where(ok6, 40, ihl)
        total = np.where(ok6, tot6, total)
        proto = np.where(ok6, nh6, proto)
        ok |= ok6
    if not ok.all():
        k = np.flatnonzero(ok)
        ii, p, cap_rem, ihl, total, proto, is6 = ii[k], p[k], cap_rem[k], ihl[k], total[k], proto[k], is6[k]
    t = p + ihl
    ip_pl = total - ihl
    cap_pl = cap_rem - ihl
    avail = np.minimum(ip_pl, cap_pl)

    # -- transport -------------------------------------------------------------------------------
    q = g.i64(t)  # ports, then TCP sequence / UDP length / ICMP rest
    sport = (q >> 48) & 0xFFFF
    dport = (q >> 32) & 0xFFFF
    is_tcp = proto == 6
    is_udp = proto == 17
    hdr_ok = (ip_pl >= 8) & (cap_pl >= 8)
    q2 = g.i64(t + 8)  # TCP acknowledgement, data offset, flags, window; UDP payload
    doff = ((q2 >> 28) & 0x0F) * 4
    ok = np.where(is_tcp, (ip_pl >= 20) & (cap_pl >= 20) & (doff >= 20) & (doff <= ip_pl) & (doff <= cap_pl),
                  hdr_ok)
    if is_udp.any():
        b0, b1, b2 = (q2 >> 56) & 0xFF, (q2 >> 48) & 0xFF, (q2 >> 40) & 0xFF
        uavail = avail - 8
        looks_tunnel = (((uavail >= 3) & (b1 == 0x52) & (b2 == 0x11))
                        | ((uavail >= 40) & (((b0 >> 4) == 6) | ((b0 == 0) & (b1 <= 1))))
                        | (t + 16 > len(raw.data)))
        ok &= ~(is_udp & (_TUNNEL_LUT[sport] | _TUNNEL_LUT[dport] | looks_tunnel))
    if not ok.any():
        return None, handled, int(nonip.sum())
    if not ok.all():
        k = np.flatnonzero(ok)
        ii, p, t, total, proto, is6, ip_pl, avail = ii[k], p[k], t[k], total[k], proto[k], is6[k], ip_pl[k], avail[k]
        sport, dport, is_tcp, is_udp, doff, q, q2 = sport[k], dport[k], is_tcp[k], is_udp[k], doff[k], q[k], q2[k]
    handled[ii] = True
    m = len(ii)

    icmp = ~is_tcp & ~is_udp
    udp_plen = np.maximum(((q >> 16) & 0xFFFF) - 8, 0)
    hdr = np.where(is_tcp, doff, 8)
    plen = np.where(is_udp, udp_plen, ip_pl - hdr)
    pay_cap = avail - hdr
    pay_cap = np.where(is_udp, np.minimum(pay_cap, udp_plen), pay_cap)
    has_pay = pay_cap > 0
    if icmp.any():  # ICMP type and code are the two bytes of the "source port"
        sport, dport = np.where(icmp, sport >> 8, sport), np.where(icmp, sport & 0xFF, dport)

    cols = {name: np.empty(m, dtype=dt) for name, dt in DECODED_COLUMNS.items()}
    cols["pkt"][:] = ii
    cols["ver"][:] = np.where(is6, 6, 4)
    cols["proto"][:] = proto
    cols["sport"][:] = sport
    cols["dport"][:] = dport
    cols["ip_len"][:] = total
    cols["plen"][:] = plen
    cols["pay_off"][:] = np.where(has_pay, t + hdr, -1)
    cols["pay_cap"][:] = np.where(has_pay, pay_cap, 0)
    cols["tunnel"][:] = -1
    cols["l4_ok"][:] = 1
    cols["seq"][:] = np.where(is_tcp, q & 0xFFFFFFFF, 0)
    cols["ack"][:] = np.where(is_tcp, (q2 >> 32) & 0xFFFFFFFF, 0)
    cols["flags"][:] = np.where(is_tcp, (q2 >> 16) & 0xFF, 0)
    cols["win"][:] = np.where(is_tcp, q2 & 0xFFFF, 0)
    if is6.any():
        i4, i6 = np.flatnonzero(~is6), np.flatnonzero(is6)
        p6 = p[i6]
        for name, delta in (("src_hi", 8), ("src_lo", 16), ("dst_hi", 24), ("dst_lo", 32)):
            cols[name][i6] = g.u64(p6 + delta)
    else:
        i4 = slice(None)
    cols["src_hi"][i4] = 0
    cols["dst_hi"][i4] = 0
    a = g.i64(p[i4] + 12)  # both IPv4 addresses
    cols["src_lo"][i4] = ((a >> 32) & 0xFFFFFFFF).astype(np.uint64) | _V4_MAPPED
    cols["dst_lo"][i4] = (a & 0xFFFFFFFF).astype(np.uint64) | _V4_MAPPED
    return cols, handled, int(nonip.sum())
