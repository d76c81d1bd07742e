"""TCP reassembly for one direction of one connection, free of any protocol knowledge.

``Stream`` turns segments (sequence number, bytes) into in-order bytes handed to ``deliver``, and
reports what will never arrive to ``gap`` with its length. Used by the application layer
(``apps.dispatch``) and by the rule engine.

- Delivery starts at the initial sequence number: the SYN's plus one, or the first segment seen
  when the capture starts in the middle of the connection.
- Sequence numbers are 32-bit and wrap; positions here are unwrapped 64-bit integers, each new
  segment taken as the one nearest the in-order point (within 2 GiB either side).
- A retransmission or overlap never changes bytes already delivered or already buffered: the first
  copy seen wins (Zeek's reassembler does the same for delivered data).
- Segments beyond a hole are buffered, at most ``max_buffer`` bytes; past that bound the hole is
  reported as a gap and delivery goes on from the next buffered segment. ``flush`` does the same for
  every hole (at FIN, RST, a timeout or end of input). ``ack`` does it as soon as the receiver
  acknowledges past a hole (its bytes reached the receiver, not the tap: they will never be seen),
  as Zeek's reassembler reports a content gap, so a parser goes on at once rather than at the end.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython
from recorder.core.purecython import slotted

M32 = 0xFFFFFFFF
HALF = 1 << 31
DEFAULT_MAX_BUFFER = 1 << 20  # out-of-order bytes held per direction


@cython.cclass
class Stream:
    """In-order delivery of one direction's bytes. Call ``start`` once (or let ``add`` start it).

    Compiled, an extension type with C 64-bit positions and counters (sequence numbers are 32-bit
    and positions stay far below 2**63); lists and bytes keep Python's checked indexing."""

    deliver = cython.declare(object, visibility="public")
    gap = cython.declare(object, visibility="public")
    max_buffer = cython.declare(cython.longlong, visibility="public")
    next = cython.declare(cython.longlong, visibility="public")
    starts = cython.declare(list, visibility="public")
    datas = cython.declare(list, visibility="public")
    buffered = cython.declare(cython.longlong, visibility="public")
    delivered = cython.declare(cython.longlong, visibility="public")
    gaps = cython.declare(cython.longlong, visibility="public")

    def __init__(self, deliver: Callable[[bytes], None], gap: Callable[[int], None],
                 max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.deliver = deliver
        self.gap = gap
        self.max_buffer = max_buffer
        self.next = -1  # unwrapped position of the next byte to deliver; -1 until started
        self.starts: list[int] = []  # buffered segments beyond a hole: sorted, non-overlapping
        self.datas: list[bytes] = []
        self.buffered = 0  # bytes in datas
        self.delivered = 0  # bytes handed to deliver so far
        self.gaps = 0  # bytes reported as gaps so far

    @property
    def started(self) -> bool:
        return self.next >= 0

    def start(self, seq: int, syn: bool) -> None:
        """Begin at a SYN (data starts one past it) or at the first segment seen."""
        self.next = ((seq + 1) & M32) if syn else (seq & M32)

    @cython.cfunc
    @cython.returns(cython.longlong)
    @cython.locals(seq=cython.longlong, nxt=cython.longlong)
    def _pos(self, seq: int) -> int:
        """Unwrapped position of a 32-bit sequence number, the one nearest the in-order point."""
        nxt = self.next
        return nxt + (((seq - nxt) + HALF) & M32) - HALF

    @cython.locals(seq=cython.longlong, data=bytes)
    def add_next(self, seq: int, data: bytes) -> bool:
        """``add``'s common case alone, for a caller's hot loop: when ``data`` starts at the next
        byte (``seq``) and nothing is held, deliver it and return True; else do nothing and return
        False (then call ``add``)."""
        if self.starts or self.next < 0 or seq != (self.next & M32):
            return False
        self.next += len(data)
        self.delivered += len(data)
        self.deliver(data)
        return True

    @cython.locals(seq=cython.longlong, data=bytes, n=cython.longlong, pos=cython.longlong, end=cython.longlong)
    def add(self, seq: int, data: bytes, length: int | None = None) -> None:
        """A segment: ``data`` at sequence ``seq``. ``length`` is its sequence-space length when
        fewer bytes were captured than sent (the missing tail becomes a gap once it is reached)."""
        if self.next < 0:
            self.start(seq, False)
        n = len(data)
        pos = self._pos(seq)
        if length is not None and length > n:
            # a truncated capture: the tail is known to be lost; deliver what there is, then skip
            if n:
                self.add(seq, data)
            if self.next == pos + n:  # the captured part was delivered: the rest is lost
                self.gaps += length - n
                self.next = pos + length
                self.gap(length - n)
                self._drain()
            return
        if pos == self.next and not self.starts:  # the common case: in order, nothing buffered
            if n:
                self.next = pos + n
                self.delivered += n
                self.deliver(data)
            return
        end = pos + n
        if end <= self.next:
            return  # a retransmission of delivered bytes
        if pos < self.next:
            data = data[self.next - pos:]
            pos = self.next
        if pos == self.next:
            self.next = end
            self.delivered += len(data)
            self.deliver(data)
            self._drain()
            return
        self._insert(pos, data)
        while self.buffered > self.max_buffer and self.starts:
            self._skip_hole()

    @cython.cfunc
    @cython.locals(pos=cython.longlong, data=bytes, end=cython.longlong, i=cython.Py_ssize_t, j=cython.Py_ssize_t,
                   k=cython.Py_ssize_t, cur=cython.longlong, s=cython.longlong, e=cython.longlong, starts=list,
                   datas=list, pieces=list)
    def _insert(self, pos: int, data: bytes) -> None:
        """Buffer the parts of [pos, pos+len) not already buffered (the first copy wins)."""
        starts, datas = self.starts, self.datas
        end = pos + len(data)
        i = bisect_right(starts, pos) - 1
        if i < 0:
            i = 0
        cur = pos
        pieces: list[tuple[int, bytes]] = []
        j = i
        while j < len(starts) and starts[j] < end:
            s = starts[j]
            e = s + len(datas[j])
            if e <= cur:
                j += 1
                continue
            if s > cur:
                pieces.append((cur, data[cur - pos:s - pos]))
            cur = max(cur, e)
            j += 1
            if cur >= end:
                break
        if cur < end:
            pieces.append((cur, data[cur - pos:]))
        for piece in pieces:
            k = bisect_left(starts, piece[0])
            starts.insert(k, piece[0])
            datas.insert(k, piece[1])
            self.buffered += len(piece[1])

    @cython.cfunc
    @cython.locals(starts=list, datas=list, s=cython.longlong, e=cython.longlong, d=bytes)
    def _drain(self) -> None:
        """Deliver buffered segments the in-order point has reached."""
        starts, datas = self.starts, self.datas
        while starts and starts[0] <= self.next:
            s = starts.pop(0)
            d = datas.pop(0)
            self.buffered -= len(d)
            e = s + len(d)
            if e <= self.next:
                continue
            if s < self.next:
                d = d[self.next - s:]
            self.next = e
            self.delivered += len(d)
            self.deliver(d)

    @cython.cfunc
    @cython.locals(hole=cython.longlong)
    def _skip_hole(self) -> None:
        hole = self.starts[0] - self.next
        if hole > 0:
            self.gaps += hole
            self.next = self.starts[0]
            self.gap(hole)
        self._drain()

    @cython.locals(seq=cython.longlong, pos=cython.longlong, hole=cython.longlong)
    def ack(self, seq: int) -> None:
        """The receiver acknowledged everything before ``seq``: holes below it are gaps now."""
        if self.next < 0 or not self.starts:
            return
        pos = self._pos(seq)
        while self.starts and pos > self.next:
            if pos >= self.starts[0]:
                self._skip_hole()
            else:  # part of the hole acknowledged: the rest may still come
                hole = pos - self.next
                self.gaps += hole
                self.next = pos
                self.gap(hole)
                self._drain()
                break

    def flush(self) -> None:
        """Report every hole as a gap and deliver everything buffered (end of this direction)."""
        while self.starts:
            self._skip_hole()


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    Stream = slotted(Stream)
