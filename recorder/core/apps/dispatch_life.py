"""The application layer's connections from their parser on (part of ``apps.dispatch``).

``Lifecycle`` is a part of ``AppLayer``: a connection's parser attached (its uid made then, only for
connections a parser takes), handed over (``redetect``: detection starts again), failed (an exception
drops the parser; with none left the connection is ignored), ignored (its rows dropped cheaply from
then on), ended (buffered bytes delivered with their gaps, then the parsers' ``end``), and the sweep of
timed-out connections. Also the connections a parser announces (``Output.expect``: an FTP data
channel, a DCE/RPC endpoint), which get that parser without detection when they come.

A connection's mode (``_State.mode`` in ``apps.dispatch``): DETECTING, ATTACHED, SATED (every parser
has what it needs, ``Parser.wants_data`` false: its bytes are no longer reassembled, but FIN, RST and
timeouts still end it and its parsers get ``end``), IGNORED, CLOSED.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from recorder.core.apps.base import Conn, Output, Parser
from recorder.core.flow.flowid import uid_of

NS = 1_000_000_000
EXPECT_FOR = 300 * NS  # how long an expected connection is waited for
DETECTING, ATTACHED, SATED, IGNORED, CLOSED = 0, 1, 2, 3, 4


class OutProxy:
    """The Output parsers see: the caller's, except that ``expect`` also registers with the dispatcher."""

    def __init__(self, out: Output, app: Lifecycle) -> None:
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


class Lifecycle:
    """The connection lifecycle methods of ``AppLayer`` (``apps.dispatch``), whose state they use:
    ``conns``, ``ignored``, ``failures``, ``out``, ``recognised`` and ``_services``, ``_expected``,
    ``_buffered_total``, ``_batch_uids``, ``_ts``; ``st`` is a connection's ``_State`` there."""

    # ------------------------------------------------------------------ public API
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

    # ------------------------------------------------------------------ a connection's parsers
    def _gap(self, st: Any, is_orig: bool, n: int) -> None:
        if st.mode != ATTACHED:
            return
        for p in tuple(st.parsers):
            try:
                p.gap(is_orig, n, self._ts)
            except Exception:
                self._fail(st, p)

    def _attach(self, st: Any, P: type[Parser], context: dict | None) -> None:
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

    def _redetect(self, st: Any, p: Parser) -> None:
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

    def _fail(self, st: Any, p: Parser) -> None:
        self.failures[type(p).service] += 1
        if p in st.parsers:
            st.parsers.remove(p)
        if not st.parsers:
            self._ignore(st)

    def _ignore(self, st: Any) -> None:
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

    def _end(self, st: Any, ts: float) -> None:
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

    # ------------------------------------------------------------------ expected connections
    def _expect(self, orig_h: str | None, resp_h: str, resp_p: int, parser: type[Parser], context: dict,
                ts: float) -> None:
        self._expected.setdefault((resp_h, resp_p), []).append(
            (orig_h, parser, context, int(ts * NS) + EXPECT_FOR))

    def _take_expected(self, st: Any, t: int) -> None:
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
