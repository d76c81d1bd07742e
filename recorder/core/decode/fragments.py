"""IPv4 and IPv6 fragment reassembly, as Zeek's FragReassembler does it.

A datagram is keyed by (IP version, source, destination, identification, protocol). Its
header is the first fragment *received* (Zeek's choice); for IPv6 the next header after the
fragment header is taken from the fragment at offset 0 once seen. Overlapping data keeps the
bytes that arrived first. The datagram is complete when the data runs contiguously from 0 to
the size implied by the last fragment (MF=0), or beyond it if later fragments say so; the
contiguous prefix is then returned as one IP packet and the state is dropped, so the
reassembled datagram counts as one packet, as in Zeek's conn.log.

State is bounded: at most ``max_pending`` datagrams (the oldest is dropped to make room) and a
datagram is dropped ``timeout_ns`` after its first fragment (packet time). Zeek keeps fragments
forever unless ``frag_timeout`` is set; its tuning scripts set 5 minutes, the default here.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

DEFAULT_MAX_PENDING = 10_000
DEFAULT_TIMEOUT_NS = 300 * 10**9


@dataclass(slots=True)
class _Datagram:
    created: int
    version: int
    header: bytearray  # IPv4 header, or IPv6 headers before the fragment header
    nh_index: int  # IPv6: index in header of the next-header byte that pointed at the fragment
    next_proto: int
    size: int = 0  # payload size implied by the last fragment; 0 while unknown
    blocks: list[tuple[int, int, bytes]] = field(default_factory=list)  # sorted, disjoint
    members: list = field(default_factory=list)  # the callers' tokens of its fragments, in arrival order


class FragmentReassembler:
    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING, timeout_ns: int = DEFAULT_TIMEOUT_NS) -> None:
        self.max_pending = max_pending
        self.timeout_ns = timeout_ns
        self._pending: OrderedDict[tuple, _Datagram] = OrderedDict()
        self.completed = 0
        self.evicted = 0
        self.expired = 0
        self.members: list = []  # the tokens of the datagram ``add`` last completed

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, key: tuple, ts: int, version: int, header: bytes, nh_index: int, next_proto: int,
            offset: int, more: bool, data: bytes, member=None) -> bytes | None:
        """Add one fragment; return the reassembled IP packet when this fragment completes it.
        ``member`` (any token, such as where the packet lies) is kept with the datagram: when it
        completes, ``members`` lists its fragments' tokens in arrival order."""
        self._expire(ts)
        dg = self._pending.get(key)
        if dg is not None and self.timeout_ns and ts - dg.created > self.timeout_ns:
            del self._pending[key]
            self.expired += 1
            dg = None
        if dg is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.evicted += 1
            dg = _Datagram(ts, version, bytearray(header), nh_index, next_proto)
            self._pending[key] = dg
        if offset == 0:
            dg.next_proto = next_proto
        if member is not None:
            dg.members.append(member)
        upper = offset + len(data)
        if not more:
            if dg.size == 0 or upper > dg.size:
                dg.size = upper
        elif dg.size and upper > dg.size:
            dg.size = upper
        if not _insert(dg.blocks, offset, data):
            return None
        whole = _complete(dg)
        if whole is not None:
            del self._pending[key]
            self.completed += 1
            self.members = dg.members
        return whole

    def _expire(self, ts: int) -> None:
        if not self.timeout_ns:
            return
        while self._pending:
            dg = next(iter(self._pending.values()))
            if ts - dg.created <= self.timeout_ns:
                break
            self._pending.popitem(last=False)
            self.expired += 1


def _insert(blocks: list[tuple[int, int, bytes]], start: int, data: bytes) -> bool:
    """Add the parts of [start, start+len) not yet covered (first arrival wins)."""
    end = start + len(data)
    pieces = []
    pos = start
    for bs, be, _ in blocks:
        if be <= pos:
            continue
        if bs >= end:
            break
        if bs > pos:
            pieces.append((pos, bs, data[pos - start:bs - start]))
        pos = max(pos, be)
        if pos >= end:
            break
    if pos < end:
        pieces.append((pos, end, data[pos - start:]))
    if not pieces:
        return False
    blocks.extend(pieces)
    blocks.sort(key=lambda b: b[0])
    return True


def _complete(dg: _Datagram) -> bytes | None:
    blocks = dg.blocks
    if not dg.size or blocks[0][0] > 0:
        return None
    end = 0
    parts = []
    for bs, be, bd in blocks:
        if bs != end:
            break
        parts.append(bd)
        end = be
    if end < dg.size:
        return None
    dg.size = end
    hdr = dg.header
    total = len(hdr) + end
    if dg.version == 4:
        hdr[2:4] = (total & 0xFFFF).to_bytes(2, "big")
        hdr[6] &= 0xC0  # clear MF and the offset, keep DF
        hdr[7] = 0
    else:
        hdr[4:6] = ((total - 40) & 0xFFFF).to_bytes(2, "big")
        hdr[dg.nh_index] = dg.next_proto
    return bytes(hdr) + b"".join(parts)
