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

This module holds the per-row path (grouping, reassembly, delivery); ``AppLayer`` is assembled from
it, ``apps.dispatch_detect`` (orientation, the parsers to try, detection on a batch's new
connections) and ``apps.dispatch_life`` (attach, hand-over, failure, ignore, end, timeouts, expected
connections).

A connection ends (parsers get ``end``) on FIN from both sides or RST, after Zeek's inactivity
timeouts (TCP 5 min, UDP 1 min, the DNS analyzer's 10 s session timer on DNS ports, an unanswered
SYN after 5 s), on reuse by a new SYN, and at ``finish``. Within one batch the rows of different
connections are not interleaved in time: a parser hand-over (``redetect``) takes effect between
deliveries, and the total out-of-order bound is checked connection by connection.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence

import numpy as np

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import Conn, Output, Parser
from recorder.core.apps.dispatch_detect import Detection
from recorder.core.apps.dispatch_life import ATTACHED, CLOSED, DETECTING, SATED, Lifecycle, OutProxy
from recorder.core.apps.streams import DEFAULT_MAX_BUFFER, Stream
from recorder.core.batch import DecodedBatch, RawBatch
from recorder.core.flow.flowid import (
    DNS_UDP_PORTS,
    canonical_keys,
    key_hashes,
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


class AppLayer(Detection, Lifecycle):
    """Feeds the payload of decoded batches to protocol parsers; see the module docstring.

    ``failures`` counts parser exceptions per service. ``inactivity`` overrides the timeouts in
    seconds (keys ``tcp``, ``udp``, ``dns``). ``max_buffer`` bounds out-of-order bytes per direction,
    ``max_total_buffer`` across all connections (the largest are flushed as gaps past it).
    ``finish``, ``services`` and ``take_services`` are ``Lifecycle``'s (``apps.dispatch_life``).
    """

    def __init__(self, out: Output, parsers: Sequence[type[Parser]], *, inactivity: dict | None = None,
                 max_buffer: int = DEFAULT_MAX_BUFFER, max_total_buffer: int = DEFAULT_TOTAL_BUFFER) -> None:
        self.out = OutProxy(out, self)
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

    # ------------------------------------------------------------------ data
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
