"""pcapng block parser: sections, interfaces and packet blocks into RawBatches.

Used by :mod:`recorder.core.capio.pcapio`, which opens the file (plain or gzip) and hands over a
buffered :class:`Source`. Handles both byte orders (a new Section Header Block may switch it and
resets the interfaces), Interface Description Blocks with ``if_tsresol`` (10^-n and 2^-n) and
``if_tsoffset``, Enhanced, Simple and obsolete Packet Blocks; every other block is skipped.

A damaged block (a corrupt length, a trailing length that differs, a packet block that does not
fit) is searched past as in classic pcap (``pcaprecords``): :func:`find_block` looks at every
4-byte-aligned offset after it for a known block type whose leading and trailing lengths agree,
an Enhanced Packet Block naming a defined interface, with a time in the file's range and a
packet whose link-layer header decodes, followed by another sound block (or the end).
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from recorder.core.batch import RawBatch
from recorder.core.capio.pcaprecords import link_plausible

SHB = 0x0A0D0D0A  # Section Header Block (a palindrome: same value in both byte orders)
IDB = 0x00000001  # Interface Description Block
PB = 0x00000002  # obsolete Packet Block
SPB = 0x00000003  # Simple Packet Block
EPB = 0x00000006  # Enhanced Packet Block
BYTE_ORDER_MAGIC = 0x1A2B3C4D
MAX_BLOCK = 16 * 1024 * 1024  # a longer block is taken as corruption (Wireshark's limit is similar)

OPT_END, IF_TSRESOL, IF_TSOFFSET = 0, 9, 14
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

# stop(reason, byte offset of the bad block, packets read so far): reading ends after this call
StopFn = Callable[[str, int, int], None]


class Source(Protocol):
    """A forward-only window on a byte stream; offsets are absolute stream positions."""

    buf: bytearray | mmap.mmap  # bytes from ``base`` on
    base: int
    end: int  # offset just past the buffered bytes
    error: str | None  # why the stream ended early (a gzip error), if it did

    def fill(self, end: int) -> bool: ...  # make bytes up to ``end`` available; False at end of stream

    def drop(self, upto: int) -> None: ...  # forget bytes before ``upto``

    def get(self, start: int, end: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class Interface:
    """One pcapng interface: ``ts_ns = ticks * num // den + offset_ns``."""

    linktype: int
    snaplen: int  # 0 = no limit
    num: int = 1000  # default resolution: microseconds
    den: int = 1
    offset_ns: int = 0

    def ts_ns(self, ticks: int) -> int:
        return ticks * self.num // self.den + self.offset_ns

    @property
    def precision_ns(self) -> int:
        """One timestamp tick in whole nanoseconds (at least 1)."""
        return max(1, self.num // self.den)


def tsresol(code: int) -> tuple[int, int]:
    """``(num, den)`` turning ticks of resolution ``code`` (if_tsresol) into nanoseconds."""
    exp = code & 0x7F
    if code & 0x80:  # 2^-exp seconds
        return 10**9, 1 << exp
    return (10 ** (9 - exp), 1) if exp <= 9 else (1, 10 ** (exp - 9))


def parse_idb(block: bytes, endian: str) -> Interface:
    """The Interface of one whole IDB (header and trailer included); bad options are ignored."""
    linktype, _, snaplen = struct.unpack_from(endian + "HHI", block, 8)
    num, den, offset_ns = 1000, 1, 0
    pos, end = 16, len(block) - 4
    while pos + 4 <= end:
        code, olen = struct.unpack_from(endian + "HH", block, pos)
        if code == OPT_END or pos + 4 + olen > end:
            break
        if code == IF_TSRESOL and olen >= 1:
            num, den = tsresol(block[pos + 4])
        elif code == IF_TSOFFSET and olen >= 8:
            offset_ns = struct.unpack_from(endian + "q", block, pos + 4)[0] * 10**9
        pos += 4 + (olen + 3) // 4 * 4
    return Interface(linktype, snaplen, num, den, offset_ns)


def _section_endian(src: Source, pos: int) -> str | None:
    """Byte order of the SHB at ``pos`` (12 bytes must be buffered), or None if its magic is bad."""
    bom = struct.unpack_from("<I", src.buf, pos - src.base + 8)[0]
    if bom == BYTE_ORDER_MAGIC:
        return "<"
    if bom == 0x4D3C2B1A:
        return ">"
    return None


def _check_block(src: Source, pos: int, endian: str | None) -> tuple[int | None, str, str | None]:
    """Validate the block at ``pos`` and buffer all of it: ``(type, endian, problem)``.

    The type is None at the end of the stream or when there is a problem.
    """
    if not src.fill(pos + 12):
        have = src.end - pos
        if have:
            return None, "", f"truncated block header: {have} of 12 bytes"
        return None, "", f"compressed stream ends early ({src.error})" if src.error else None
    btype = struct.unpack_from("<I", src.buf, pos - src.base)[0]
    if btype == SHB:
        endian = _section_endian(src, pos)
        if endian is None:
            return None, "", "corrupt section header: bad byte-order magic"
    elif endian is None:
        return None, "", "first block is not a section header"
    else:
        btype = struct.unpack_from(endian + "I", src.buf, pos - src.base)[0]
    blen = struct.unpack_from(endian + "I", src.buf, pos - src.base + 4)[0]
    if blen < 12 or blen % 4 or blen > MAX_BLOCK or (btype == SHB and blen < 28):
        return None, "", f"corrupt block: length {blen}"
    if not src.fill(pos + blen):
        return None, "", f"truncated block: {src.end - pos} of {blen} bytes"
    r = pos - src.base
    trailer = struct.unpack_from(endian + "I", src.buf, r + blen - 4)[0]
    if trailer != blen:
        return None, "", f"corrupt block: trailing length {trailer} differs from {blen}"
    if btype == SHB:
        major = struct.unpack_from(endian + "H", src.buf, r + 12)[0]
        if major != 1:
            return None, "", f"unsupported pcapng version {major}"
    return btype, endian, None


def _readers(endian: str) -> tuple[Callable[..., tuple[int, ...]], ...]:
    """unpack_from of a block header (type, length), an EPB header and one uint32."""
    return tuple(struct.Struct(endian + f).unpack_from for f in ("II", "5I", "I"))


def read_pcapng(src: Source, source: str, batch_size: int, stop: StopFn, damage=None) -> Iterator[RawBatch]:
    """Yield the packets of a pcapng stream in batches of ``batch_size`` (the last may be shorter).

    A corrupt block is skipped over to the next sound one when ``damage`` (``pcapio._Damage``:
    the time span so far, and the list the skipped ranges go to) is given and there is one. A
    truncated block, or damage with nothing sound after it, ends the stream: the packets before
    it are yielded, then ``stop`` is called with the reason and the block's offset.
    """
    pos, index, last_ts = src.base, 0, 0
    endian: str | None = None
    ifaces: list[Interface] = []
    # struct readers for the current section's byte order (set again at each section header)
    head, epb, u32 = _readers("<")
    while True:
        start = pos
        d_off: list[int] = []
        b_off: list[int] = []
        caps: list[int] = []
        wires: list[int] = []
        tss: list[int] = []
        lts: list[int] = []
        problem: str | None = None
        damaged = False  # the problem may be damage with sound blocks after it
        buf, base = src.buf, src.base  # base only moves between batches
        while len(b_off) < batch_size:
            r = pos - base
            if endian is not None and pos + 32 <= src.end:  # fast lane: a sound, buffered EPB
                btype, blen = head(buf, r)
                if (btype == EPB and 32 <= blen <= MAX_BLOCK and not blen & 3 and pos + blen <= src.end
                        and u32(buf, r + blen - 4)[0] == blen):
                    iface, hi, lo, cap, wire = epb(buf, r + 8)
                    if iface < len(ifaces) and cap <= blen - 32:
                        ifc = ifaces[iface]
                        last_ts = ((hi << 32) | lo) * ifc.num // ifc.den + ifc.offset_ns
                        d_off.append(pos + 28)
                        b_off.append(pos)
                        caps.append(cap)
                        wires.append(wire)
                        tss.append(last_ts)
                        lts.append(ifc.linktype)
                        pos += blen
                        continue
            btype, endian_now, problem = _check_block(src, pos, endian)
            if btype is None:
                damaged = problem is not None and problem.startswith(("corrupt block", "truncated block:"))
                break
            if endian_now != endian:
                endian = endian_now
                head, epb, u32 = _readers(endian)
            blen = u32(buf, r + 4)[0]
            if btype == EPB or btype == PB:
                if blen < 32:
                    problem = f"corrupt packet block: length {blen}"
                    damaged = True
                    break
                if btype == EPB:
                    iface, hi, lo, cap, wire = epb(buf, r + 8)
                else:
                    iface, _, hi, lo, cap, wire = struct.unpack_from(endian + "HH4I", buf, r + 8)
                if iface >= len(ifaces):
                    problem = f"packet block names interface {iface}, only {len(ifaces)} defined"
                    damaged = bool(ifaces)
                    break
                if cap > blen - 32:
                    problem = f"corrupt packet block: captured length {cap} exceeds the block"
                    damaged = True
                    break
                ifc = ifaces[iface]
                last_ts = ifc.ts_ns((hi << 32) | lo)
                d_off.append(pos + 28)
            elif btype == SPB:
                if not ifaces:
                    problem = "simple packet block before any interface"
                    break
                ifc = ifaces[0]
                wire = u32(buf, r + 8)[0]
                cap = min(wire, blen - 16, ifc.snaplen or wire)
                d_off.append(pos + 12)
            else:
                if btype == SHB:
                    ifaces = []
                elif btype == IDB and blen >= 20:
                    ifaces.append(parse_idb(src.get(pos, pos + blen), endian))
                pos += blen
                continue
            b_off.append(pos)
            caps.append(cap)
            wires.append(wire)
            tss.append(last_ts)
            lts.append(ifc.linktype)
            pos += blen
        if b_off:
            yield _batch(src.get(start, pos), start, source, index, d_off, b_off, caps, wires, tss, lts)
            index += len(b_off)
        src.drop(pos)
        if problem:
            found = None
            if damaged and damage is not None and endian is not None:
                found = find_block(src, pos, endian, ifaces, _window(damage))
            if found is None:
                stop(problem, pos, index)
                return
            damage.skipped.append((pos, found))
            pos = found
            buf = src.buf
            continue
        if len(b_off) < batch_size:
            return


_KNOWN = np.array([SHB, IDB, PB, SPB, 4, 5, EPB, 0xA], dtype=np.int64)  # block types to restart at
_TS_BEFORE_NS, _TS_AFTER_NS = 3600 * 10**9, 7 * 86400 * 10**9


def _window(damage) -> tuple[int, int] | None:
    if damage.first_sec is None or damage.last_sec is None:
        return None
    return damage.first_sec * 10**9 - _TS_BEFORE_NS, (damage.last_sec + 1) * 10**9 + _TS_AFTER_NS


def find_block(src: Source, pos: int, endian: str, ifaces: list[Interface],
               ts_range: tuple[int, int] | None) -> int | None:
    """The offset of the next sound block after a damaged one at ``pos`` (4-byte aligned), or None."""
    p = pos + 4
    while True:
        more = src.fill(p + (4 << 20) + 2 * MAX_BLOCK)
        end = src.end
        last = end - 12 if not more else end - 2 * MAX_BLOCK
        if last >= p:
            n = (last - p) // 4 + 1
            words = np.frombuffer(src.buf, dtype=np.dtype(endian + "u4"), count=n, offset=p - src.base)
            for i in np.flatnonzero(np.isin(words, _KNOWN)):
                q = p + 4 * int(i)
                if _sound(src, q, endian, ifaces, ts_range, end, first=True, at_eof=not more):
                    return q
            p += 4 * n
        if not more:
            return None
        src.drop(p)


def _sound(src: Source, q: int, endian: str, ifaces: list[Interface], ts_range: tuple[int, int] | None,
           end: int, *, first: bool, at_eof: bool) -> bool:
    """Is there a plausible block at ``q`` (the first: an EPB with a decodable packet in time, or a
    section or interface header), followed by another (or the end)?"""
    if q == end and at_eof and not first:
        return True
    if q + 12 > end:
        return False
    r = q - src.base
    btype = struct.unpack_from("<I", src.buf, r)[0]
    if btype != SHB:
        btype = struct.unpack_from(endian + "I", src.buf, r)[0]
    blen = struct.unpack_from(endian + "I", src.buf, r + 4)[0]
    if btype not in _KNOWN or blen < 12 or blen % 4 or blen > MAX_BLOCK or q + blen > end:
        return False
    if struct.unpack_from(endian + "I", src.buf, r + blen - 4)[0] != blen:
        return False
    if btype == SHB:
        return blen >= 28 and _section_endian(src, q) == endian
    if first:
        if btype == IDB:
            return blen >= 20 and _sound(src, q + blen, endian, ifaces, ts_range, end, first=False, at_eof=at_eof)
        if btype != EPB or blen < 32:
            return False
        iface, hi, lo, cap, wire = struct.unpack_from(endian + "5I", src.buf, r + 8)
        if iface >= len(ifaces) or cap > blen - 32 or cap > wire:
            return False
        ts = ifaces[iface].ts_ns((hi << 32) | lo)
        if ts_range is not None and not ts_range[0] <= ts <= ts_range[1]:
            return False
        if not link_plausible(ifaces[iface].linktype, src.get(q + 28, q + 28 + cap)):
            return False
        # the next block sound, or (the file's time range known) more damage right after it:
        # the intact blocks between two damaged stretches are kept
        return _sound(src, q + blen, endian, ifaces, ts_range, end, first=False, at_eof=at_eof) \
            or (ts_range is not None and (q + blen + 12 <= end or at_eof))
    return True


def _batch(data: bytes, start: int, source: str, index: int, d_off: list[int], b_off: list[int],
           caps: list[int], wires: list[int], tss: list[int], lts: list[int]) -> RawBatch:
    try:
        ts = np.array(tss, dtype=np.int64)
    except OverflowError:  # absurd ticks/resolution: clamp rather than fail
        ts = np.array([min(max(t, _I64_MIN), _I64_MAX) for t in tss], dtype=np.int64)
    n = len(b_off)
    return RawBatch(
        source=source, data=data,
        off=np.array(d_off, dtype=np.int64) - start,
        caplen=np.array(caps, dtype=np.int64),
        wirelen=np.array(wires, dtype=np.int64),
        ts=ts,
        linktype=np.array(lts, dtype=np.int64),
        file_off=np.array(b_off, dtype=np.int64),
        index=np.arange(index, index + n, dtype=np.int64),
    )


def leading_interfaces(src: Source) -> list[Interface]:
    """The interfaces defined before the first packet block (where writers put them)."""
    pos, ifaces = src.base, []
    endian: str | None = None
    while True:
        btype, endian_now, _ = _check_block(src, pos, endian)
        if btype is None or btype in (EPB, SPB, PB):
            return ifaces
        endian = endian_now
        blen = struct.unpack_from(endian + "I", src.buf, pos - src.base + 4)[0]
        if btype == IDB and blen >= 20:
            ifaces.append(parse_idb(src.get(pos, pos + blen), endian))
        elif btype == SHB and ifaces:  # a second section before any packet: keep the first's
            return ifaces
        pos += blen
        src.drop(pos)
