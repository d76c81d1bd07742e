"""The application layer's detection: which parser takes a connection (part of ``apps.dispatch``).

``Detection`` is a part of ``AppLayer``, holding what happens before the dispatcher keeps any state
for a connection: orienting it as the flow meter does (the originator is the SYN sender, a SYN-ACK's
receiver, else the side not on one of Zeek's likely server ports; its addresses as text, cached),
ordering the parsers to try on it (those whose ports hold its server port first), and trying them
on the first payload of each direction of the connections a batch starts, so that a connection no
parser recognises is dropped whole before any state is made for it (``AppLayer._rows``).
"""

from __future__ import annotations

import numpy as np

from recorder.core.apps.base import Conn, Parser
from recorder.core.flow.flowid import LIKELY_SERVER_TCP, LIKELY_SERVER_UDP, addr_str

NS = 1_000_000_000
F_SYN, F_ACK = 0x02, 0x10
BCAST_LO = (0xFFFF << 32) | 0xFFFFFFFF  # the low 64 bits of 255.255.255.255 (IPv4-mapped)


class Detection:
    """The detection methods of ``AppLayer`` (``apps.dispatch``), whose state they use: ``parsers``,
    ``conns``, ``ignored``, ``failures``, ``_expected`` and the caches ``_order``, ``_addrs``,
    ``_made``. ``_settle`` gives a connection dropped by ``_quick_ignore`` its turn (``_row`` when a
    parser announced it meanwhile)."""

    def _cands(self, proto: int, resp_p: int) -> tuple[type[Parser], ...]:
        """The parsers to try on a connection: those whose ports hold its server port first."""
        key = (proto, resp_p)
        cands = self._order.get(key)
        if cands is None:
            tr = "tcp" if proto == 6 else "udp"
            mine = [p for p in self.parsers if p.transport == tr]
            cands = self._order[key] = tuple(sorted(mine, key=lambda p: resp_p not in p.ports))
        return cands

    def _conn(self, c: dict, r: int, t: int, proto: int, fl: int) -> tuple[Conn, bool]:
        """The Conn of a connection whose first row is r, and whether r's source is its originator."""
        return self._make_conn(t, proto, fl, int(c["sport"][r]), int(c["dport"][r]), int(c["src_hi"][r]),
                               int(c["src_lo"][r]), int(c["dst_hi"][r]), int(c["dst_lo"][r]))

    def _make_conn(self, t: int, proto: int, fl: int, sport: int, dport: int, sh: int, sl: int, dh: int,
                   dl: int) -> tuple[Conn, bool]:
        src_is_orig = True
        if proto == 6:
            if fl & F_SYN:
                src_is_orig = not fl & F_ACK  # a SYN-ACK's receiver is the originator
            elif sport in LIKELY_SERVER_TCP and (dport not in LIKELY_SERVER_TCP or sport < dport):
                src_is_orig = False
        elif sport in LIKELY_SERVER_UDP and dport not in LIKELY_SERVER_UDP:
            src_is_orig = dh == 0 and dl == BCAST_LO
        s = self._addr(sh, sl)
        d = self._addr(dh, dl)
        if src_is_orig:
            return Conn(s, sport, d, dport, "tcp" if proto == 6 else "udp", t / NS), True
        return Conn(d, dport, s, sport, "tcp" if proto == 6 else "udp", t / NS), False

    def _quick_ignore(self, c: dict, data: bytes, payloads: dict, rows: np.ndarray, dirs: np.ndarray,
                      gstart: np.ndarray, cand: np.ndarray, gh: np.ndarray, gt: np.ndarray, glast: np.ndarray,
                      p0: np.ndarray, p1: np.ndarray, pre: dict[int, int]) -> None:
        """Connections starting in this batch whose first payload in each direction (rows ``p0``,
        ``p1``) no parser recognises go to ``pre`` (key hash -> last time): they are ignored before
        any state is made for them, unless announced as expected by the time their turn comes."""
        conns, ignored = self.conns, self.ignored
        a = gstart[cand]
        r = rows[a]
        q0, q1 = rows[p0], rows[p1]
        cols = [c[k][r].tolist() for k in ("proto", "flags", "sport", "dport", "src_hi", "src_lo", "dst_hi",
                                           "dst_lo")]
        pay = [(c["pay_off"][q].tolist(), c["pay_cap"][q].tolist(), q.tolist(), dirs[p].tolist())
               for q, p in ((q0, p0), (q1, p1))]
        first0 = (p0 < p1).tolist()
        for i, (kh, t, last, a_src) in enumerate(zip(gh[cand].tolist(), gt[cand].tolist(), glast[cand].tolist(),
                                                     dirs[a].tolist())):
            if kh in conns or kh in ignored:
                continue
            proto = cols[0][i]
            conn, src_is_orig = self._make_conn(t, proto, cols[1][i], cols[2][i], cols[3][i], cols[4][i],
                                                cols[5][i], cols[6][i], cols[7][i])
            if self._expected and (conn.resp_h, conn.resp_p) in self._expected:
                self._made[kh] = (t, conn, src_is_orig, None)
                continue  # an announced data channel: it gets its parser without detection
            orig_is_a = a_src == src_is_orig
            cands = self._cands(proto, conn.resp_p)
            hit = None
            for k in ((0, 1) if first0[i] else (1, 0)):
                off, cap, prow, src = pay[k][0][i], pay[k][1][i], pay[k][2][i], pay[k][3][i]
                chunk = data[off:off + cap] if off >= 0 else payloads.get(prow, b"")
                is_orig = src == orig_is_a
                for P in cands:
                    try:
                        if P.detect(chunk, is_orig, conn):
                            hit = P
                            break
                    except Exception:
                        self.failures[P.service] += 1
                if hit is not None:
                    break
            self._made[kh] = (t, conn, src_is_orig, hit)  # kept for _new
            if hit is None:
                pre[kh] = last

    def _addr(self, hi: int, lo: int) -> str:
        cache = self._addrs
        key = (hi, lo)
        text = cache.get(key)
        if text is None:
            if len(cache) > 100_000:
                cache.clear()
            if hi == 0 and lo >> 32 == 0xFFFF:
                text = f"{lo >> 24 & 255}.{lo >> 16 & 255}.{lo >> 8 & 255}.{lo & 255}"
            else:
                text = addr_str((hi << 64) | lo)
            cache[key] = text
        return text

    def _settle(self, item: tuple[int, int, int], pre: dict[int, int], c: dict, data: bytes, payloads: dict,
                full: tuple[np.ndarray, ...]) -> None:
        """A pre-ignored connection's turn: ignored, unless a parser announced it in the meantime."""
        rows, hs, ts, dirs = full
        _, a, b = item
        kh = int(hs[a])
        conn = self._made[kh][1]
        if not (self._expected and (conn.resp_h, conn.resp_p) in self._expected):
            self.ignored[kh] = pre[kh]
            self._ignored_dirty = True
            return
        for i in range(a, b):
            r = int(rows[i])
            self._row(c, data, payloads, r, kh, int(ts[i]), bool(dirs[i]), int(c["proto"][r]), int(c["pay_off"][r]),
                      int(c["pay_cap"][r]), int(c["plen"][r]), int(c["flags"][r]), int(c["seq"][r]), int(c["ack"][r]) if "ack" in c else -1)
