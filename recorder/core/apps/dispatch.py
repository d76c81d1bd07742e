"""The application layer: from decoded batches to protocol parsers (the contract is ``apps.base``).

``AppLayer.feed`` runs after ``FlowMeter.add`` on every batch. Per batch:

1. numpy keeps only the rows that need Python: TCP/UDP rows with captured payload, and TCP rows
   with SYN, FIN or RST; it computes each row's canonical connection key and its 64-bit hash (the
   flow meter's key layout, so a connection's uid is the meter's: ``flowid.connection_uids`` of
   the key and the first packet's time), and drops the rows of connections already found to carry
   nothing a parser knows (``np.isin`` on the hash);
2. the rows are grouped by connection (connections in the order they first appear, each one's
   rows in packet order, so a data channel announced on a control channel is known before its
   own rows come). A connection that starts in the batch and whose first payload in each direction
   no parser recognises is dropped whole before any state is made for it;
3. the rest go through Python: each connection is oriented as the flow meter orients it (orig =
   SYN sender; a SYN-ACK's receiver; else Zeek's likely server ports), its TCP directions are
   reassembled (``apps.streams``; runs of plain in-order segments are joined into one delivery),
   and its bytes go to detection and then to the parser that recognised them.

A connection ends (parsers get ``end``) on FIN from both sides or RST, after Zeek's inactivity
timeouts (TCP 5 min, UDP 1 min, the DNS analyzer's 10 s session timer on DNS ports, an unanswered
SYN after 5 s), on reuse by a new SYN, and at ``finish``. Within one batch the rows of different
connections are not interleaved in time: a parser hand-over (``redetect``) takes effect between
deliveries, and the total out-of-order bound is checked connection by connection.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence

import numpy as np

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import Conn, Output, Parser
from recorder.core.apps.streams import DEFAULT_MAX_BUFFER, Stream
from recorder.core.batch import DecodedBatch, RawBatch
from recorder.core.flowid import (
    DNS_UDP_PORTS,
    LIKELY_SERVER_TCP,
    LIKELY_SERVER_UDP,
    addr_str,
    canonical_keys,
    key_hashes,
    uid_of,
    uids_of,
)
from recorder.core.purecython import slotted

NS = 1_000_000_000
F_FIN, F_SYN, F_RST, F_ACK = 0x01, 0x02, 0x04, 0x10
DETECT_LIMIT = 4096  # bytes looked at for detection before a connection is ignored
DEFAULT_TOTAL_BUFFER = 256 << 20  # out-of-order bytes held across all connections
CLOSE_DELAY = 5 * NS  # Zeek's tcp_close_delay: a closed connection's late packets still belong to it
ATTEMPT_DELAY = 5 * NS  # Zeek's tcp_attempt_delay: an unanswered SYN is given up after this
DNS_SESSION = 10 * NS  # Zeek's dns_session_timeout
SWEEP_EVERY = 5 * NS  # how often (capture time) idle connections are looked for
EXPECT_FOR = 300 * NS  # how long an expected connection is waited for

# SATED: every parser of the connection has what it needs (``Parser.wants_data`` false): its
# bytes are no longer reassembled, but FIN, RST and timeouts still end it (parsers get ``end``)
DETECTING, ATTACHED, SATED, IGNORED, CLOSED = 0, 1, 2, 3, 4

_BCAST_LO = (0xFFFF << 32) | 0xFFFFFFFF


class _OutProxy:
    """The Output parsers see: the caller's, except that ``expect`` also registers with the dispatcher."""

    def __init__(self, out: Output, app: AppLayer) -> None:
        self._out = out
        self._app = app
        self.log = out.log
        self.credential = out.credential
        self.file = out.file
        self.name = out.name
        self.mac = out.mac
        self.inspecting = getattr(out, "inspecting", False)
        self.inspect = getattr(out, "inspect", None)

    def expect(self, conn: Conn, *, orig_h: str | None, resp_h: str, resp_p: int,
               parser: type[Parser], context: dict, ts: float) -> None:
        self._app._expect(orig_h, resp_h, resp_p, parser, context, ts)
        fwd = getattr(self._out, "expect", None)
        if fwd is not None:
            fwd(conn, orig_h=orig_h, resp_h=resp_h, resp_p=resp_p, parser=parser, context=context, ts=ts)


@cython.cclass
class _State:
    """One connection as the application layer follows it (compiled: an extension type whose
    times, counters and flags are C integers; times are nanoseconds, far below 2**63)."""

    app = cython.declare(object, visibility="public")
    conn = cython.declare(object, visibility="public")
    h = cython.declare(object, visibility="public")  # the 64-bit key hash, a dict key
    proto = cython.declare(cython.int, visibility="public")
    orig_is_a = cython.declare(cython.bint, visibility="public")
    start = cython.declare(cython.longlong, visibility="public")
    last = cython.declare(cython.longlong, visibility="public")
    deadline = cython.declare(cython.longlong, visibility="public")
    mode = cython.declare(cython.int, visibility="public")
    parsers = cython.declare(list, visibility="public")
    so = cython.declare(object, visibility="public")
    sr = cython.declare(object, visibility="public")
    seen = cython.declare(cython.longlong, visibility="public")
    tried = cython.declare(cython.int, visibility="public")
    pending = cython.declare(list, visibility="public")
    fin = cython.declare(cython.int, visibility="public")
    resp_seen = cython.declare(cython.bint, visibility="public")
    isn = cython.declare(cython.longlong, visibility="public")
    dns = cython.declare(cython.bint, visibility="public")
    cands = cython.declare(tuple, visibility="public")

    def __init__(self, app: AppLayer, conn: Conn, h: int, proto: int, orig_is_a: bool, ts: int) -> None:
        self.app = app
        self.conn = conn
        self.h = h
        self.proto = proto
        self.orig_is_a = orig_is_a
        self.start = ts
        self.last = ts
        self.deadline = ts
        self.mode = DETECTING
        self.parsers: list[Parser] = []
        self.so: Stream | None = None
        self.sr: Stream | None = None
        self.seen = 0
        self.tried = 0  # bit 1: orig's first payload tried, bit 2: resp's
        self.pending: list[tuple[bool, bytes, float]] = []
        self.fin = 0  # bit 1: orig sent FIN, bit 2: resp
        self.resp_seen = False
        self.isn = -1  # orig's SYN sequence number, for Zeek's reuse test
        self.dns = proto == 17 and conn.resp_p in DNS_UDP_PORTS
        self.cands: tuple[type[Parser], ...] = ()

    # stream callbacks (TCP) -------------------------------------------------------------
    def data_o(self, data: bytes) -> None:
        self.app._data(self, True, data)

    def data_r(self, data: bytes) -> None:
        self.app._data(self, False, data)

    def gap_o(self, n: int) -> None:
        self.app._gap(self, True, n)

    def gap_r(self, n: int) -> None:
        self.app._gap(self, False, n)

    def buffered(self) -> int:
        return (self.so.buffered if self.so else 0) + (self.sr.buffered if self.sr else 0)


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    _State = slotted(_State)


class AppLayer:
    """Feeds the payload of decoded batches to protocol parsers; see the module docstring.

    ``failures`` counts parser exceptions per service. ``inactivity`` overrides the timeouts in
    seconds (keys ``tcp``, ``udp``, ``dns``). ``max_buffer`` bounds out-of-order bytes per direction,
    ``max_total_buffer`` across all connections (the largest are flushed as gaps past it).
    """

    def __init__(self, out: Output, parsers: Sequence[type[Parser]], *, inactivity: dict | None = None,
                 max_buffer: int = DEFAULT_MAX_BUFFER, max_total_buffer: int = DEFAULT_TOTAL_BUFFER) -> None:
        self.out = _OutProxy(out, self)
        self.parsers = tuple(parsers)
        to = {"tcp": 300.0, "udp": 60.0, "dns": 10.0, **(inactivity or {})}
        self.tcp_timeout = int(to["tcp"] * NS)
        self.udp_timeout = int(to["udp"] * NS)
        self.dns_timeout = int(to["dns"] * NS)
        self.max_buffer = max_buffer
        self.max_total_buffer = max_total_buffer
        self.failures: collections.Counter[str] = collections.Counter()
        self.conns: dict[int, _State] = {}
        self.ignored: dict[int, int] = {}  # key hash -> last time a row of it was seen (ns)
        self._ignored_arr = np.zeros(0, dtype=np.uint64)
        self._ignored_dirty = False
        self._services: dict[str, list[str]] = {}
        self.recognised: list[Conn] | None = None  # when a list: each connection whose protocol a parser recognises
        self._expected: dict[tuple[str, int], list[tuple[str | None, type[Parser], dict, int]]] = {}
        self._order: dict[tuple[int, int], tuple[type[Parser], ...]] = {}
        self._has_tcp = any(p.transport == "tcp" for p in self.parsers)
        self._has_udp = any(p.transport == "udp" for p in self.parsers)
        self.now = 0
        self._last_sweep = 0
        self._ts = 0.0  # the current row's time, epoch seconds (for stream callbacks)
        self._buffered_total = 0
        # key hash -> (start, Conn, source is originator, parser found) made by _quick_ignore for _new
        self._made: dict[int, tuple[int, Conn, bool, type[Parser] | None]] = {}
        self._batch_uids: dict[int, tuple[int, str]] = {}  # key hash -> (start, uid) of this batch's rows
        self._addrs: dict[tuple[int, int], str] = {}

    # ------------------------------------------------------------------ public API
    def feed(self, raw: RawBatch, dec: DecodedBatch) -> None:
        """Process one decoded batch (rows ordered by packet)."""
        n = len(dec)
        if n == 0 or not self.parsers:
            return
        c = dec.cols
        proto = c["proto"]
        cap = c["pay_cap"]
        flags = c["flags"]
        is_tcp = proto == 6
        want = np.zeros(n, dtype=bool)
        if self._has_tcp:
            want |= is_tcp & ((cap > 0) | ((flags & (F_SYN | F_FIN | F_RST)) != 0))
        if self._has_udp:
            want |= (proto == 17) & (cap > 0)
        want &= c["l4_ok"] != 0
        rows = np.flatnonzero(want)
        if not len(rows):
            return
        key, swap = canonical_keys(proto[rows], c["src_hi"][rows], c["src_lo"][rows], c["dst_hi"][rows],
                                   c["dst_lo"][rows], c["sport"][rows], c["dport"][rows])
        h = key_hashes(key)  # the flow meter's key, so the uid is conn.log's
        ts = raw.ts[c["pkt"][rows]]
        if self.ignored:
            if self._ignored_dirty:
                self._ignored_arr = np.fromiter(self.ignored, dtype=np.uint64, count=len(self.ignored))
                self._ignored_dirty = False
            drop = np.isin(h, self._ignored_arr)
            # a SYN without ACK may start a new connection on an ignored one's addresses
            drop &= (flags[rows] & (F_SYN | F_ACK)) != F_SYN
            if drop.any():
                self.ignored.update(dict.fromkeys(np.unique(h[drop]).tolist(), int(ts[drop].max())))
                keep = ~drop
                rows, h, ts, swap = rows[keep], h[keep], ts[keep], swap[keep]
        if len(rows):
            self._rows(raw, dec, rows, h, ts, swap)
        self.now = max(self.now, int(raw.ts[-1]) if len(raw) else 0)
        if self.now - self._last_sweep >= SWEEP_EVERY:
            self._sweep(self.now)
            self._last_sweep = self.now

    def finish(self) -> None:
        """End of input: every open connection ends (at the time of the last packet seen)."""
        ts = self.now / NS
        for st in list(self.conns.values()):
            if st.mode != CLOSED:
                self._end(st, ts)
        self.conns.clear()
        self.ignored.clear()
        self._ignored_dirty = True
        self._expected.clear()

    def services(self) -> Iterator[tuple[str, list[str]]]:
        """(uid, sorted services) of every connection in which a parser recognised its protocol."""
        for uid, svc in self._services.items():
            yield uid, sorted(svc)

    def take_services(self) -> list[tuple[str, list[str]]]:
        """``services`` recognised since the last call, then forgotten here (a recorder running for
        months would otherwise keep every connection's); a connection that gains a service later
        (STARTTLS) is given again with all of its services."""
        taken, self._services = self._services, {}
        return [(uid, sorted(svc)) for uid, svc in taken.items()]

    @property
    def open_connections(self) -> int:
        return sum(1 for st in self.conns.values() if st.mode != CLOSED)

    # ------------------------------------------------------------------ rows
    @cython.locals(i=cython.Py_ssize_t, j=cython.Py_ssize_t, a=cython.Py_ssize_t, b=cython.Py_ssize_t,
                   pp=cython.Py_ssize_t, start_i=cython.Py_ssize_t, st=_State, t=cython.longlong,
                   limit=cython.longlong, is_orig=cython.bint, rl=list, hl=list, tl=list, al=list, pl_=list,
                   ol=list, cl=list, ll=list, fl=list, sl=list, akl=list, rel=list, syl=list, pll=list,
                   pre_list=list)
    def _rows(self, raw: RawBatch, dec: DecodedBatch, rows: np.ndarray, h: np.ndarray, ts: np.ndarray,
              swap: np.ndarray) -> None:
        """The rows of one batch, connection by connection (in the order the connections first
        appear, each one's rows in packet order). A connection that starts here and whose first
        payload in each direction no parser recognises is dropped whole, before any state is made
        for it; runs of plain in-order segments of one direction of a connection with a parser are
        joined into one delivery."""
        n = len(rows)
        _, first, inv = np.unique(h, return_index=True, return_inverse=True)
        gfirst = first[inv.reshape(-1)].astype(np.int64)
        order = np.argsort(gfirst * n + np.arange(n, dtype=np.int64))
        c = dec.cols
        rows, hs, ts, dirs, gfirst = rows[order], h[order], ts[order], ~swap[order], gfirst[order]
        caps, flags = c["pay_cap"][rows], c["flags"][rows]
        gstart = np.flatnonzero(np.diff(gfirst, prepend=-1) != 0)
        ngroups = len(gstart)
        gid = np.cumsum(np.diff(gfirst, prepend=-1) != 0) - 1
        synonly = (flags & (F_SYN | F_ACK)) == F_SYN
        # the first payload row of each direction of each connection
        pm = np.flatnonzero((caps > 0) & ((flags & F_RST) == 0))
        fp = np.full(2 * ngroups, -1, dtype=np.int64)
        if len(pm):
            u, ix = np.unique(gid[pm] * 2 + dirs[pm], return_index=True)
            fp[u] = pm[ix]
        # SYNs after a group's first row, and its last time: a group may be dropped whole only
        # when nothing in it could start another connection
        later_syn = np.add.reduceat(synonly.astype(np.int64), gstart) - synonly[gstart]
        glast = np.maximum.reduceat(ts, gstart)
        gh, gt = hs[gstart], ts[gstart]
        data = raw.data
        payloads = dec.payloads
        conns = self.conns
        ignored = self.ignored
        pre: dict[int, int] = {}
        self._made = {}
        fp2 = fp.reshape(-1, 2)
        cand = np.flatnonzero((fp2[:, 0] >= 0) & (fp2[:, 1] >= 0) & (later_syn == 0))
        if len(cand):
            self._quick_ignore(c, data, payloads, rows, dirs, gstart, cand, gh, gt, glast, fp2[cand, 0], fp2[cand, 1],
                               pre)
        uid_list = uids_of(gh, gt)
        self._batch_uids = dict(zip(gh.tolist(), zip(gt.tolist(), uid_list)))
        # the rows of pre-ignored connections leave the Python loop here; each is settled when its
        # turn comes (ignored, or run after all when a parser announced it meanwhile)
        pre_list: list[tuple[int, int, int]] = []  # (first position, start, end) in the sorted rows
        full: tuple[np.ndarray, ...] = ()
        if pre:
            pg = np.flatnonzero(np.isin(gh, np.fromiter(pre, dtype=np.uint64, count=len(pre))))
            gend = np.append(gstart[1:], n)
            pre_list = list(zip(gfirst[gstart[pg]].tolist(), gstart[pg].tolist(), gend[pg].tolist()))
            sel = np.flatnonzero(~np.isin(gid, pg))
            full = (rows, hs, ts, dirs)
            rows, hs, ts, dirs, gfirst, caps, flags, synonly = (
                x[sel] for x in (rows, hs, ts, dirs, gfirst, caps, flags, synonly))
            n = len(rows)
        offs, plens, seqs, protos = c["pay_off"][rows], c["plen"][rows], c["seq"][rows], c["proto"][rows]
        plain = (((flags & (F_SYN | F_FIN | F_RST)) == 0) & (caps > 0) & (caps == plens) & (offs >= 0)
                 & (protos == 6))
        cont = np.zeros(n, dtype=bool)
        if n > 1:
            nxt = (seqs[:-1].astype(np.int64) + caps[:-1]) & 0xFFFFFFFF
            cont[1:] = ((gfirst[1:] == gfirst[:-1]) & (dirs[1:] == dirs[:-1]) & plain[1:] & plain[:-1]
                        & (protos[1:] == 6) & (seqs[1:].astype(np.int64) == nxt))
        run_starts = np.flatnonzero(~cont)
        run_end = np.append(run_starts[1:], n)[np.cumsum(~cont) - 1]  # end of the run each row is in
        group_starts = np.flatnonzero(np.diff(gfirst, prepend=-1) != 0)
        group_ends = np.append(group_starts[1:], n)
        rl, hl, tl, al, pl_ = rows.tolist(), hs.tolist(), ts.tolist(), dirs.tolist(), protos.tolist()
        ol, cl, ll, fl, sl = offs.tolist(), caps.tolist(), plens.tolist(), flags.tolist(), seqs.tolist()
        akl = c["ack"][rows].tolist() if "ack" in c else [-1] * n  # -1: no ACK known
        rel, syl, pll = run_end.tolist(), synonly.tolist(), plain.tolist()
        row = self._row
        pp = 0
        gfl = gfirst[group_starts].tolist()
        for a, b, gf in zip(group_starts.tolist(), group_ends.tolist(), gfl):
            while pp < len(pre_list) and pre_list[pp][0] < gf:
                self._settle(pre_list[pp], pre, c, data, payloads, full)
                pp += 1
            kh = hl[a]
            i = a
            while i < b:
                if kh in ignored:
                    # nothing here for a parser: skip to a SYN that may start a new connection, or
                    # to a row past the timeout that would
                    limit = ignored[kh] + (self.tcp_timeout if pl_[i] == 6 else self.udp_timeout)
                    start_i = i
                    while i < b and not syl[i] and tl[i] < limit:
                        i += 1
                    if i > start_i:
                        ignored[kh] = max(ignored[kh], tl[i - 1])
                    if i >= b:
                        break
                    if tl[i] >= limit:
                        del ignored[kh]
                        self._ignored_dirty = True
                j = rel[i]
                if pll[i]:
                    st = conns.get(kh)
                    t = tl[j - 1]
                    if st is not None and (st.mode == ATTACHED or st.mode == SATED) and t < st.deadline:
                        is_orig = al[i] == st.orig_is_a
                        s = st.so if is_orig else st.sr
                        if s is not None or st.mode == SATED:
                            st.last = t
                            if not is_orig:
                                st.resp_seen = True
                            st.deadline = t + self.tcp_timeout
                            if st.mode == SATED:  # plain segments: no flags that could end it, nothing to deliver
                                i = j
                                continue
                            self._ts = tl[i] / NS
                            peer = st.sr if is_orig else st.so
                            if peer is not None and peer.starts and fl[i] & F_ACK and akl[i] >= 0:
                                self._ack(peer, akl[i])
                            payload = (data[ol[i]:ol[i] + cl[i]] if j - i == 1 else
                                       b"".join([data[o:o + m] for o, m in zip(ol[i:j], cl[i:j])]))
                            if s.add_next(sl[i], payload):  # in order with nothing held
                                i = j
                                continue
                            before = s.buffered
                            s.add(sl[i], payload)
                            if s.buffered != before:
                                self._buffered_total += s.buffered - before
                                if self._buffered_total > self.max_total_buffer:
                                    self._evict()
                            i = j
                            continue
                row(c, data, payloads, rl[i], kh, tl[i], al[i], pl_[i], ol[i], cl[i], ll[i], fl[i], sl[i], akl[i])
                i += 1
        for item in pre_list[pp:]:
            self._settle(item, pre, c, data, payloads, full)

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

    @cython.locals(st=_State, t=cython.longlong, a_src=cython.bint, proto=cython.int, off=cython.longlong,
                   cap=cython.longlong, plen=cython.longlong, fl=cython.int, seq=cython.longlong,
                   ack=cython.longlong, is_orig=cython.bint)
    def _row(self, c: dict, data: bytes, payloads: dict, r: int, kh: int, t: int, a_src: bool, proto: int,
             off: int, cap: int, plen: int, fl: int, seq: int, ack: int = -1) -> None:
        """One row through its connection: timers, reuse, creation, reassembly, close."""
        conns = self.conns
        st = conns.get(kh)
        if st is not None:
            if st.proto != proto:
                return  # a 64-bit hash collision between live connections: leave it be
            if t >= st.deadline or (proto == 6 and fl & F_SYN and self._reuse(st, fl, seq, a_src)):
                if st.mode != CLOSED:
                    self._end(st, st.last / NS)
                del conns[kh]
                st = None
            elif st.mode == CLOSED:
                return
        if st is None:
            if kh in self.ignored:
                if proto != 6 or (fl & (F_SYN | F_ACK)) != F_SYN:
                    return
                del self.ignored[kh]
                self._ignored_dirty = True
            st = self._new(c, r, kh, t, a_src, proto, fl)
            if st is None:
                return
            conns[kh] = st
        self._ts = t / NS
        is_orig = a_src == st.orig_is_a
        st.last = t
        if proto == 17:
            if st.dns:
                T = self.dns_timeout
                k = max((t + T - NS - st.start + T - 1) // T, 1)
                st.deadline = min(t + self.udp_timeout, st.start + k * T)
            else:
                st.deadline = t + self.udp_timeout
            if st.mode <= ATTACHED:
                self._data(st, is_orig, data[off:off + cap] if off >= 0 else payloads.get(r, b""))
            return
        if not is_orig:
            st.resp_seen = True
        st.deadline = t + self.tcp_timeout if st.resp_seen or st.isn < 0 else st.start + ATTEMPT_DELAY
        if st.mode > ATTACHED:
            if fl & (F_FIN | F_RST):
                self._close_flags(st, is_orig, fl, t)
            return
        s = st.so if is_orig else st.sr
        if s is None:
            if is_orig:
                s = st.so = Stream(st.data_o, st.gap_o, self.max_buffer)
            else:
                s = st.sr = Stream(st.data_r, st.gap_r, self.max_buffer)
            s.start(seq, bool(fl & F_SYN))
        elif fl & F_SYN and not s.delivered and not s.starts:
            s.start(seq, True)
        peer = st.sr if is_orig else st.so
        if peer is not None and peer.starts and fl & F_ACK and ack >= 0:
            self._ack(peer, ack)
        if cap and not fl & F_RST:
            before = s.buffered
            s.add(seq + 1 if fl & F_SYN else seq, data[off:off + cap] if off >= 0 else payloads.get(r, b""),
                  plen if plen > cap else None)
            if s.buffered != before:
                self._buffered_total += s.buffered - before
                if self._buffered_total > self.max_total_buffer:
                    self._evict()
        if fl & (F_FIN | F_RST):
            self._close_flags(st, is_orig, fl, t)

    def _ack(self, peer: Stream, ack: int) -> None:
        """A segment acknowledging the other direction past a hole: that hole is a gap now."""
        before = peer.buffered
        peer.ack(ack)
        self._buffered_total += peer.buffered - before

    @cython.locals(st=_State, fl=cython.int, seq=cython.longlong, a_src=cython.bint)
    def _reuse(self, st: _State, fl: int, seq: int, a_src: bool) -> bool:
        """Zeek's IsReuse, simplified: a SYN after a FIN/RST, or a new initial sequence number."""
        if st.fin or st.mode == CLOSED:
            return True
        if fl & F_ACK:
            return False
        return (a_src == st.orig_is_a) and st.isn >= 0 and seq != st.isn

    @cython.locals(st=_State, is_orig=cython.bint, fl=cython.int, t=cython.longlong)
    def _close_flags(self, st: _State, is_orig: bool, fl: int, t: int) -> None:
        if fl & F_RST:
            st.fin |= 3
        else:
            st.fin |= 1 if is_orig else 2
            s = st.so if is_orig else st.sr
            if s is not None and s.starts and st.mode <= ATTACHED:
                self._buffered_total -= s.buffered
                s.flush()
        if st.fin == 3:
            if st.mode != CLOSED:
                self._end(st, t / NS)
            st.deadline = t + CLOSE_DELAY

    def _new(self, c: dict, r: int, kh: int, t: int, a_src: bool, proto: int, fl: int) -> _State | None:
        """A connection begins at row r: orient it as the flow meter does."""
        made = self._made.pop(kh, None)
        found = None
        if made is not None and made[0] == t:
            conn, src_is_orig, found = made[1], made[2], made[3]
        else:
            conn, src_is_orig = self._conn(c, r, t, proto, fl)
        st = _State(self, conn, kh, proto, a_src == src_is_orig, t)
        if proto == 6:
            if fl & F_SYN and not fl & F_ACK:
                st.isn = int(c["seq"][r])
            st.deadline = t + (self.tcp_timeout if st.isn < 0 else ATTEMPT_DELAY)
        else:
            st.deadline = t + self.udp_timeout
        if self._expected:
            self._take_expected(st, t)
        st.cands = self._cands(proto, conn.resp_p)  # also for detection after a hand-over
        if st.mode == DETECTING:
            if found is not None:
                self._attach(st, found, None)  # detected already on this batch's first payloads
            elif not st.cands:
                self._ignore(st)
                return None
        return st

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
            src_is_orig = dh == 0 and dl == _BCAST_LO
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

    # ------------------------------------------------------------------ data and detection
    @cython.locals(st=_State, is_orig=cython.bint)
    def _data(self, st: _State, is_orig: bool, data: bytes) -> None:
        ts = self._ts
        if st.mode == ATTACHED:
            for p in tuple(st.parsers):  # a failure or a hand-over changes the list
                try:
                    p.data(is_orig, data, ts)
                except Exception:
                    self._fail(st, p)
                    continue
                if p.redetect:
                    self._redetect(st, p)
                elif not p.wants_data and st.mode == ATTACHED and not any(q.wants_data for q in st.parsers):
                    st.mode = SATED  # the streams stay as they are until the end (no more adds)
            return
        if st.mode != DETECTING or not data:
            return
        st.seen += len(data)
        if st.seen <= DETECT_LIMIT:
            st.pending.append((is_orig, data, ts))
        bit = 1 if is_orig else 2
        head = b"".join([d for o, d, _ in st.pending if o == is_orig])[:DETECT_LIMIT] if st.tried & bit else data
        conn = st.conn
        for P in st.cands:
            try:
                hit = P.detect(head, is_orig, conn)
            except Exception:
                self.failures[P.service] += 1
                hit = False
            if hit:
                self._attach(st, P, None)
                pending, st.pending = st.pending, []
                for o, d, t in pending:
                    if st.mode != ATTACHED:
                        break
                    self._ts = t
                    self._data(st, o, d)
                self._ts = ts
                return
        st.tried |= bit
        if st.tried == 3 or st.seen > DETECT_LIMIT:
            self._ignore(st)

    def _gap(self, st: _State, is_orig: bool, n: int) -> None:
        if st.mode != ATTACHED:
            return
        for p in tuple(st.parsers):
            try:
                p.gap(is_orig, n, self._ts)
            except Exception:
                self._fail(st, p)

    def _attach(self, st: _State, P: type[Parser], context: dict | None) -> None:
        if st.conn.uid is None:  # computed only for connections a parser takes
            hint = self._batch_uids.get(st.h)
            st.conn.uid = hint[1] if hint is not None and hint[0] == st.start else uid_of(st.h, st.start)
        try:
            parser = P(st.conn, self.out, context)
        except Exception:
            self.failures[P.service] += 1
            return
        st.parsers.append(parser)
        st.mode = ATTACHED
        svc = st.conn.services
        if P.service and P.service not in svc:
            svc.append(P.service)
            if self.recognised is not None:
                self.recognised.append(st.conn)
        self._services[st.conn.uid] = svc

    def _redetect(self, st: _State, p: Parser) -> None:
        try:
            p.end(self._ts)
        except Exception:
            self.failures[type(p).service] += 1
        st.parsers.remove(p)
        if not st.parsers:
            st.mode = DETECTING
            st.seen = 0
            st.tried = 0
            st.pending = []

    def _fail(self, st: _State, p: Parser) -> None:
        self.failures[type(p).service] += 1
        if p in st.parsers:
            st.parsers.remove(p)
        if not st.parsers:
            self._ignore(st)

    def _ignore(self, st: _State) -> None:
        """Nothing here for any parser: drop the connection's rows cheaply from now on."""
        st.mode = IGNORED
        st.pending = []
        for s in (st.so, st.sr):
            if s is not None:
                self._buffered_total -= s.buffered
        st.so = st.sr = None
        if self.conns.get(st.h) is st:
            del self.conns[st.h]
        self.ignored[st.h] = st.last
        self._ignored_dirty = True

    def _end(self, st: _State, ts: float) -> None:
        """The connection is over: deliver what is buffered (with gaps), then end its parsers."""
        if st.mode in (ATTACHED, SATED):
            for s in (st.so, st.sr):
                if s is not None and s.starts:
                    self._buffered_total -= s.buffered
                    s.flush()  # SATED: nothing is delivered, the buffer is dropped
            for p in list(st.parsers):
                try:
                    p.end(ts)
                except Exception:
                    self.failures[type(p).service] += 1
        elif st.so is not None or st.sr is not None:
            self._buffered_total -= st.buffered()
        st.mode = CLOSED
        st.parsers = []
        st.pending = []
        st.so = st.sr = None

    def _sweep(self, now: int) -> None:
        """End connections whose timeout passed; forget ignored ones idle past the UDP/TCP timeout."""
        done = [st for st in self.conns.values() if st.deadline <= now]
        for st in done:
            if st.mode != CLOSED:
                self._end(st, st.last / NS)
            del self.conns[st.h]
        if self.ignored:
            limit = now - max(self.tcp_timeout, self.udp_timeout)
            old = [k for k, t in self.ignored.items() if t < limit]
            for k in old:
                del self.ignored[k]
            if old:
                self._ignored_dirty = True
        if self._expected:
            for key in list(self._expected):
                left = [e for e in self._expected[key] if e[3] > now]
                if left:
                    self._expected[key] = left
                else:
                    del self._expected[key]

    def _evict(self) -> None:
        """Over the total bound: flush the connections holding the most out-of-order bytes."""
        by_size = sorted((st for st in self.conns.values() if st.mode in (ATTACHED, SATED)), key=_State.buffered,
                         reverse=True)
        for st in by_size:
            if self._buffered_total <= self.max_total_buffer // 2:
                break
            for s in (st.so, st.sr):
                if s is not None and s.starts:
                    self._buffered_total -= s.buffered
                    s.flush()

    # ------------------------------------------------------------------ expected connections
    def _expect(self, orig_h: str | None, resp_h: str, resp_p: int, parser: type[Parser], context: dict,
                ts: float) -> None:
        self._expected.setdefault((resp_h, resp_p), []).append(
            (orig_h, parser, context, int(ts * NS) + EXPECT_FOR))

    def _take_expected(self, st: _State, t: int) -> None:
        conn = st.conn
        key = (conn.resp_h, conn.resp_p)
        waiting = self._expected.get(key)
        if not waiting:
            return
        for i, (orig_h, P, context, until) in enumerate(waiting):
            if until > t and (orig_h is None or orig_h == conn.orig_h):
                del waiting[i]
                if not waiting:
                    del self._expected[key]
                self._attach(st, P, context)
                return
