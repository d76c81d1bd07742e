"""The decoder's per-packet path: every link type, encapsulation, tunnel and fragment.

Plain Python over ``struct``; it handles whatever the vectorised fast path declines and must
produce the same rows for the packets both can decode. The rules are Zeek's (see decode.py for
the list); the IP analyzer checks are those of Zeek's ``packet_analysis/protocol/ip/IP.cc``:

* fewer than 20 captured bytes, an unknown version, an IPv6 header not captured, a total
  length beyond the packet's wire length, a header longer than the datagram or than the
  capture: malformed. An IPv4 total length of 0 (TCP segmentation offload) is replaced by the
  captured length, as Zeek does when checksums are ignored.
* transport headers: TCP, UDP and ICMP need their fixed header (20, 8, 8 bytes) both within the
  IP payload length and captured, else the packet is malformed (Zeek's ``truncated_header``,
  no connection). A TCP data offset below 20 or beyond the payload gives a row with
  ``l4_ok=0``: Zeek creates the connection but does not count the packet.
* no row for IPv6 packets whose header chain ends in ESP, nor for "no next header" (59).
"""

from __future__ import annotations

from collections import OrderedDict
from struct import unpack_from

from recorder.core.batch import Tunnel
from recorder.core.decode import linklayer, tunnels
from recorder.core.decode.fragments import FragmentReassembler
from recorder.core.decode.iphdr import ESP, FRAGMENT, NONE, addr16, exact_ip, ipv6_chain

_V4_MAPPED = 0xFFFF00000000
_TUNNEL_PORTS = tunnels.UDP_TUNNEL_PORTS
_STICKY = frozenset({"VXLAN", "GENEVE", "TEREDO", "AYIYA"})  # analyzers that stop after a violation


class SlowPath:
    """Decodes one packet at a time; holds the cross-packet state (fragments, tunnels, UDP conns)."""

    def __init__(self, tunnel_list: list[Tunnel], max_fragments: int, frag_timeout_ns: int) -> None:
        self.tunnels = tunnel_list
        self._tunnel_ids: dict[tuple, int] = {}
        self.frags = FragmentReassembler(max_fragments, frag_timeout_ns)
        self.udp_conns = tunnels.UdpConnTable()
        self._violated: OrderedDict[tuple, None] = OrderedDict()
        self.fragments = 0  # fragments seen
        self.fragments_dropped = 0  # not reassembled: incompletely captured, non-first
        self.ignored = 0  # IP packets Zeek makes no connection for (IPv6 ESP, no next header)
        # per-packet state
        self.data: bytes = b""
        self.rows: list[tuple] = []
        self.payloads: list[tuple[int, bytes]] = []
        self.pkt = 0
        self.ts = 0
        self.why: tuple[int, str] | None = None
        self.member = None  # the caller's token for this packet (kept with its fragments)
        self.row_members: list[tuple[int, list]] = []  # (row, tokens of the fragments before this packet)

    # -- entry point ---------------------------------------------------------------------------

    def decode(self, data: bytes, pkt: int, off: int, caplen: int, wirelen: int, linktype: int,
               ts: int) -> None:
        """Decode packet ``pkt``; rows land in ``self.rows``, failures in ``self.why``."""
        self.data = data
        self.rows = []
        self.payloads = []
        self.pkt = pkt
        self.ts = ts
        self.why = None
        self.row_members = []
        end = off + caplen
        status, starts, reason = linklayer.unwrap(data, off, end, linktype)
        if status != linklayer.IP:
            self.why = (status, reason)
            return
        missing = wirelen - caplen
        for s, e in starts:
            self._ip(data, s, e, off + wirelen - s, -1, 0, missing, False)

    def _fail(self, reason: str, status: int = linklayer.MALFORMED) -> None:
        if self.why is None:
            self.why = (status, reason)

    # -- IP ------------------------------------------------------------------------------------

    def _ip(self, buf: bytes, p: int, end: int, wire_rem: int, tun: int, depth: int, missing: int,
            reassembled: bool) -> None:
        n = end - p
        if n < 20:
            return self._fail("truncated IP header")
        v = buf[p] >> 4
        last = last_pos = prev_nh = 0
        if v == 4:
            sa, da = p + 12, p + 16
            hl = (buf[p] & 0x0F) * 4
            total = (buf[p + 2] << 8) | buf[p + 3]
            if total == 0:
                total = n  # segmentation offload zeroed it: trust the capture
            proto = buf[p + 9]
            is_frag = ((buf[p + 6] << 8) | buf[p + 7]) & 0x3FFF
        elif v == 6:
            if n < 40:
                return self._fail("truncated IPv6 header")
            total = ((buf[p + 4] << 8) | buf[p + 5]) + 40
            hl, proto, last, last_pos, prev_nh, da = ipv6_chain(buf, p, n)
            sa = p + 8
            is_frag = last == FRAGMENT
        else:
            return self._fail(f"IP version {v}")
        if wire_rem < total:
            return self._fail("IP length beyond the packet")
        if hl > total:
            return self._fail("IP header longer than the datagram")
        if hl > n:
            return self._fail("IP header not captured")
        if hl < 20:
            return self._fail("IPv4 header length below 20")
        if is_frag and not reassembled:
            self.fragments += 1
            if v == 4:
                offlg = (buf[p + 6] << 8) | buf[p + 7]
                offset, more, ident = (offlg & 0x1FFF) * 8, offlg & 0x2000, (buf[p + 4] << 8) | buf[p + 5]
                header, nh_index = buf[p:p + hl], -1
            else:
                offlg = (buf[last_pos + 2] << 8) | buf[last_pos + 3]
                offset, more, ident = offlg & 0xFFF8, offlg & 1, unpack_from(">I", buf, last_pos + 4)[0]
                header, nh_index = buf[p:last_pos], prev_nh - p
            if n >= total:
                key = (v, addr16(buf, sa, v), addr16(buf, da, v), ident, proto)
                whole = self.frags.add(key, self.ts, v, header, nh_index, proto, offset, bool(more),
                                       bytes(buf[p + hl:p + total]), self.member)
                if whole is None:
                    return None
                first, earlier = len(self.rows), self.frags.members[:-1]  # the last is this packet
                self._ip(whole, 0, len(whole), len(whole), tun, depth, 0, True)
                if self.member is not None and earlier:
                    self.row_members.extend((k, earlier) for k in range(first, len(self.rows)))
                return None
            if offset:  # not fully captured: Zeek keeps only a first fragment, unreassembled
                self.fragments_dropped += 1
                return None
        if v == 6 and last == ESP:
            self.ignored += 1
            return None
        if proto == NONE:
            self.ignored += 1
            return None
        t = p + hl
        ip_pl = total - hl
        cap_pl = n - hl
        ip = (v, sa, da)
        if proto == 6:
            return self._tcp(buf, ip, t, ip_pl, cap_pl, total, tun)
        if proto == 17:
            return self._udp(buf, ip, t, ip_pl, cap_pl, total, tun, depth, missing)
        if proto == 1 or proto == 58:
            if (ip_pl and ip_pl < 8) or cap_pl < 8:
                return self._fail("truncated ICMP header")
            length = ip_pl or cap_pl
            self._row(buf, ip, proto, buf[t], buf[t + 1], total, length - 8, 0, 0, 0, 0,
                      t + 8, min(length, cap_pl) - 8, tun, 1)
            return None
        if proto == 4 or proto == 41:
            return self._ip_in_ip(buf, ip, proto, t, cap_pl, tun, depth, missing)
        if proto == 47:
            return self._gre(buf, ip, 47, t, cap_pl, tun, depth, missing, True)
        length = ip_pl or cap_pl
        self._row(buf, ip, proto, 0, 0, total, length, 0, 0, 0, 0, t, min(length, cap_pl), tun, 1)
        return None

    def _row(self, buf: bytes, ip: tuple[int, int, int], proto: int, sport: int, dport: int, ip_len: int,
             plen: int, flags: int, seq: int, ack: int, win: int, pay_start: int, pay_cap: int,
             tun: int, l4_ok: int) -> None:
        """Append a row; ``ip`` is (version, source position, destination position)."""
        v, sa, da = ip
        if v == 4:
            sh, sl = 0, _V4_MAPPED | unpack_from(">I", buf, sa)[0]
            dh, dl = 0, _V4_MAPPED | unpack_from(">I", buf, da)[0]
        else:
            sh, sl = unpack_from(">QQ", buf, sa)
            dh, dl = unpack_from(">QQ", buf, da)
        if pay_cap <= 0:
            pay_off, pay_cap = -1, 0
        elif buf is self.data:
            pay_off = pay_start
        else:
            pay_off = -2
            self.payloads.append((len(self.rows), bytes(buf[pay_start:pay_start + pay_cap])))
        self.rows.append((self.pkt, v, sh, sl, dh, dl, proto, sport, dport, ip_len, plen, flags,
                          seq, ack, win, pay_off, pay_cap, tun, l4_ok))

    # -- transports ----------------------------------------------------------------------------

    def _tcp(self, buf: bytes, ip: tuple[int, int, int], t: int, ip_pl: int, cap_pl: int, total: int,
             tun: int) -> None:
        if (ip_pl and ip_pl < 20) or cap_pl < 20:
            return self._fail("truncated TCP header")
        sport, dport, seq, ack, offx, flags, win = unpack_from(">HHIIBBH", buf, t)
        doff = (offx >> 4) * 4
        if doff < 20 or doff > ip_pl or doff > cap_pl:
            self._row(buf, ip, 6, sport, dport, total, 0, flags, seq, ack, win, 0, 0, tun, 0)
        else:
            self._row(buf, ip, 6, sport, dport, total, ip_pl - doff, flags, seq, ack, win,
                      t + doff, min(ip_pl, cap_pl) - doff, tun, 1)
        return None

    def _udp(self, buf: bytes, ip: tuple[int, int, int], t: int, ip_pl: int, cap_pl: int, total: int,
             tun: int, depth: int, missing: int) -> None:
        if (ip_pl and ip_pl < 8) or cap_pl < 8:
            return self._fail("truncated UDP header")
        sport, dport, ulen = unpack_from(">HHH", buf, t)
        avail = min(ip_pl or cap_pl, cap_pl) - 8  # the payload Zeek hands to tunnel analyzers
        plen = max(ulen - 8, 0)  # Zeek counts UDP payload bytes from the UDP length field
        self._row(buf, ip, 17, sport, dport, total, plen, 0, 0, 0, 0, t + 8, min(avail, plen), tun, 1)
        kind = None
        v = ip[0]
        src, dst = addr16(buf, ip[1], v), addr16(buf, ip[2], v)
        conn = (tun, (src, sport, dst, dport) if (src, sport) <= (dst, dport) else (dst, dport, src, sport))
        if sport in _TUNNEL_PORTS or dport in _TUNNEL_PORTS:
            bcast = v == 4 and dst[12:] == b"\xff\xff\xff\xff"
            kind = _TUNNEL_PORTS.get(self.udp_conns.responder_port(conn, sport, dport, bcast, self.ts))
        s = t + 8
        if kind is None:
            if tunnels.ayiya_detect(buf, s, avail):
                kind = "AYIYA"
            elif tunnels.teredo_detect(buf, s, avail):
                kind = "TEREDO"
            else:
                return None
        vkey = (kind, conn)
        if kind in _STICKY and vkey in self._violated:
            return None
        if depth >= tunnels.MAX_TUNNEL_DEPTH:
            return None
        if kind == "GRE":
            return self._gre(buf, ip, 17, s, avail, tun, depth, missing, False)
        if kind == "VXLAN":
            code, start, length, link = tunnels.parse_vxlan(buf, s, avail)
        elif kind == "GENEVE":
            code, start, length, link = tunnels.parse_geneve(buf, s, avail)
        elif kind == "TEREDO":
            code, start, length, link = tunnels.parse_teredo(buf, s, avail)
        elif kind == "AYIYA":
            code, start, length, link = tunnels.parse_ayiya(buf, s, avail)
        else:
            in_gtp = tun >= 0 and self.tunnels[tun].kind == "GTPV1"
            code, start, length, link = tunnels.parse_gtpv1(buf, s, avail, in_gtp)
        if code == tunnels.VIOLATION:
            if kind in _STICKY:
                self._violated[vkey] = None
                if len(self._violated) > 65536:
                    self._violated.popitem(last=False)
            return None
        if code != tunnels.OK:
            return None
        ckey = (kind, conn)
        idx = self._tunnel_ids.get(ckey)
        if idx is None:
            idx = self._new_tunnel(ckey, Tunnel(kind, 17, src, dst, sport, dport, tun))
        return self._inner(buf, start, length, link, idx, depth + 1, missing)

    # -- IP-layer tunnels ----------------------------------------------------------------------

    def _ip_tunnel(self, kind: str, proto: int, buf: bytes, ip: tuple[int, int, int], parent: int) -> int:
        src, dst = addr16(buf, ip[1], ip[0]), addr16(buf, ip[2], ip[0])
        key = (kind, parent, min(src, dst), max(src, dst))  # Zeek: one tunnel per address pair
        idx = self._tunnel_ids.get(key)
        if idx is None:
            idx = self._new_tunnel(key, Tunnel(kind, proto, src, dst, 0, 0, parent))
        return idx

    def _new_tunnel(self, key: tuple, tunnel: Tunnel) -> int:
        idx = len(self.tunnels)
        self.tunnels.append(tunnel)
        self._tunnel_ids[key] = idx
        return idx

    def _ip_in_ip(self, buf: bytes, ip: tuple[int, int, int], proto: int, t: int, cap_pl: int, tun: int,
                  depth: int, missing: int) -> None:
        if depth >= tunnels.MAX_TUNNEL_DEPTH:
            return self._fail("tunnel depth exceeded")
        if not exact_ip(buf, t, cap_pl, 4 if proto == 4 else 6):
            return self._fail("IP-in-IP inner packet does not fill the payload")
        idx = self._ip_tunnel("IP", proto, buf, ip, tun)
        return self._ip(buf, t, t + cap_pl, cap_pl + missing, idx, depth + 1, missing, False)

    def _gre(self, buf: bytes, ip: tuple[int, int, int], outer_proto: int, t: int, n: int, tun: int,
             depth: int, missing: int, count_failure: bool) -> None:
        err, start, length, link, exact = tunnels.parse_gre(buf, t, n)
        if not err and depth >= tunnels.MAX_TUNNEL_DEPTH:
            err = "tunnel depth exceeded"
        if not err and exact and not exact_ip(buf, start, length, exact):
            err = "enhanced GRE inner packet does not fill the payload"
        if err:
            return self._fail(err) if count_failure else None
        erspan = ((buf[t + 2] << 8) | buf[t + 3]) in tunnels.ERSPAN_TYPES and not buf[t + 1] & 0x07
        idx = self._ip_tunnel("ERSPAN" if erspan else "GRE", outer_proto, buf, ip, tun)
        return self._inner(buf, start, length, link, idx, depth + 1, missing)

    def _inner(self, buf: bytes, s: int, length: int, link: str, tun: int, depth: int, missing: int) -> None:
        if link == tunnels.LINK_IP:
            return self._ip(buf, s, s + length, length + missing, tun, depth, missing, False)
        if link == tunnels.LINK_ETH:
            status, starts, reason = linklayer.ethernet(buf, s, s + length, 0)
        else:
            status, starts, reason = linklayer.ieee802_11(buf, s, s + length)
        if status != linklayer.IP:
            return self._fail(reason, status)
        wire_end = s + length + missing
        for a, b in starts:
            self._ip(buf, a, b, wire_end - a, tun, depth, missing, False)
        return None
