"""Is this a classic pcap record header? And where is the next one after a damaged stretch?

Shared by the capture reader (``pcapio``: a damaged capture is read past the damage) and the
recorder's crash repair (``pcapwrite.repair_pcap``). A header is *plausible* (read as a record)
unless the format forbids it:

* its captured length is over the file's limit (snaplen + slack, and never over 262144),
* its captured length is over its original length,
* its sub-second field is a second or more (10^6 for microsecond, 10^9 for nanosecond files),
* all sixteen bytes are zero (a zero-filled block, as a lost write leaves it).

After a damaged header, :func:`find_next` searches forward, byte by byte, like pcapfix, for the
first offset where a *resynchronisation point* is, which asks more: a plausible header with an
original length of 1 to 262144 and a timestamp in the file's range so far (from an hour before
its first packet to a week after its latest), whose packet's link-layer header is plausible
(Ethernet: a known EtherType or an 802.3 length, and an IP version that matches; raw IP: version
4 or 6), followed by ``CHAIN`` more such headers (or by the exact end of the file). Random bytes
pass all of this with a probability far below one in 10^12 per offset. The candidates are
filtered with numpy a window at a time, so a megabyte of garbage costs milliseconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from recorder.core.batch import RawBatch

MAX_CAPLEN = 262144
MAX_WIRELEN = 262144
TS_BEFORE_S = 3600  # a record may be this much older than the file's first packet
TS_AFTER_S = 7 * 86400  # ... or this much newer than its latest
CHAIN = 2  # plausible headers that must follow a resynchronisation point
WINDOW = 1 << 16  # candidate offsets examined per numpy pass
_ETHERTYPES = frozenset({0x0800, 0x86DD, 0x0806, 0x8035, 0x8100, 0x88A8, 0x9100, 0x8847, 0x8848, 0x8863,
                         0x8864, 0x888E, 0x88CC, 0x88E5, 0x88F7, 0x8809, 0x22F0, 0x893A, 0x8902, 0x6558})


@dataclass(frozen=True, slots=True)
class RecordFormat:
    """What a file's header says about its records."""

    endian: str = "<"
    nano: bool = False
    caplen_limit: int = MAX_CAPLEN
    linktype: int = 1

    @property
    def frac_limit(self) -> int:
        return 1_000_000_000 if self.nano else 1_000_000

    @property
    def u4(self) -> np.dtype:
        return np.dtype(self.endian + "u4")

    def lookahead(self) -> int:
        """Bytes past a candidate that checking its chain may need."""
        return (CHAIN + 1) * (16 + self.caplen_limit) + 16


def problem(sec: int, frac: int, caplen: int, wirelen: int, fmt: RecordFormat) -> str | None:
    """Why a record header is not plausible, or None if it is."""
    if caplen > fmt.caplen_limit:
        return f"caplen {caplen} exceeds the limit {fmt.caplen_limit}"
    if caplen > wirelen:
        return f"caplen {caplen} exceeds the original length {wirelen}"
    if frac >= fmt.frac_limit:
        return f"sub-second field {frac} out of range"
    if wirelen == 0 and sec == 0 and frac == 0:
        return "all-zero record header (a zero-filled block)"
    return None


def plausible(hdr: np.ndarray, fmt: RecordFormat) -> np.ndarray:
    """Vectorised :func:`problem` is None: ``hdr`` is an (n, 4) integer array of (sec, frac,
    caplen, wirelen)."""
    cap, wire = hdr[:, 2], hdr[:, 3]
    return (cap <= fmt.caplen_limit) & (cap <= wire) & (hdr[:, 1] < fmt.frac_limit) \
        & ((wire != 0) | (hdr[:, 0] != 0) | (hdr[:, 1] != 0))


def _candidate(hdr: np.ndarray, fmt: RecordFormat) -> np.ndarray:
    """Plausible, and an original length a real packet has (1 to 262144 bytes)."""
    return plausible(hdr, fmt) & (hdr[:, 3] > 0) & (hdr[:, 3] <= MAX_WIRELEN)


def link_plausible(linktype: int, pkt: bytes) -> bool:
    """Does the packet start with a plausible link-layer header? (True for link types not checked.)"""
    if linktype == 1:  # Ethernet
        if len(pkt) < 14:
            return False
        etype = (pkt[12] << 8) | pkt[13]
        if etype <= 1500:
            return True  # 802.3 length
        if etype not in _ETHERTYPES:
            return False
        if etype == 0x0800:
            return len(pkt) > 14 and pkt[14] >> 4 == 4
        if etype == 0x86DD:
            return len(pkt) > 14 and pkt[14] >> 4 == 6
        return True
    if linktype in (101, 12, 14, 228, 229):  # raw IP
        return len(pkt) > 0 and pkt[0] >> 4 in (4, 6)
    return True


def find_next(buf, base: int, start: int, end: int, fmt: RecordFormat, ts_range: tuple[int, int] | None,
              *, at_eof: bool) -> int | None:
    """The first resynchronisation point at an offset in ``[start, end)``.

    ``buf[i - base]`` is the byte at file offset ``i`` for ``base <= i < end``; ``at_eof`` says
    ``end`` is the end of the file (else candidates whose chain needs bytes past ``end`` are not
    decided here: the caller moves on and calls again with more). ``ts_range`` is (lo, hi) in
    seconds, None to accept any time.
    """
    arr = np.frombuffer(buf, dtype=np.uint8, count=end - base) if end > base else np.zeros(0, np.uint8)
    last = end - 16 if at_eof else end - fmt.lookahead()
    lo = start
    step = 1024  # most damage is a few hundred bytes: start small, widen to WINDOW
    while lo <= last:
        hi = min(last, lo + step)
        step = min(WINDOW, step * 4)
        hdr = _headers_at(arr, np.arange(lo - base, hi - base + 1, dtype=np.int64), fmt)
        ok = _candidate(hdr, fmt)
        if ts_range is not None:
            ok &= (hdr[:, 0] >= ts_range[0]) & (hdr[:, 0] <= ts_range[1])
        for i in np.flatnonzero(ok):
            pos = lo + int(i)
            if _chain_ok(arr, base, pos, end, fmt, ts_range, at_eof):
                return pos
        lo = hi + 1
    return None


def _headers_at(arr: np.ndarray, rel: np.ndarray, fmt: RecordFormat) -> np.ndarray:
    """(n, 4) int64 (sec, frac, caplen, wirelen) of the headers starting at ``rel`` in ``arr``."""
    b = arr[rel[:, None] + np.arange(16)].astype(np.int64).reshape(-1, 4, 4)
    if fmt.endian == "<":
        return b[:, :, 0] | (b[:, :, 1] << 8) | (b[:, :, 2] << 16) | (b[:, :, 3] << 24)
    return b[:, :, 3] | (b[:, :, 2] << 8) | (b[:, :, 1] << 16) | (b[:, :, 0] << 24)


def _chain_ok(arr: np.ndarray, base: int, pos: int, end: int, fmt: RecordFormat,
              ts_range: tuple[int, int] | None, at_eof: bool) -> bool:
    """The record at ``pos`` (with a plausible packet) and the CHAIN after it are plausible, or
    the records reach the exact end of the file. When the file's time range is known, a chain
    that runs into another damaged header (or the file's cut end) a record or two on counts too:
    the intact records between two damaged stretches are kept, and the next search starts at
    the next damage."""
    unpack = struct.Struct(fmt.endian + "IIII").unpack_from
    ts_known = ts_range is not None
    first = True
    for _ in range(CHAIN + 1):
        if pos == end and at_eof:
            return True
        if pos + 16 > end:
            return at_eof and ts_known and not first
        sec, frac, caplen, wirelen = unpack(arr, pos - base)
        fine = problem(sec, frac, caplen, wirelen, fmt) is None and 0 < wirelen <= MAX_WIRELEN \
            and (ts_range is None or ts_range[0] <= sec <= ts_range[1])
        if not fine:
            return ts_known and not first
        if ts_range is None:
            ts_range = (sec - TS_AFTER_S, sec + TS_AFTER_S)
        if pos + 16 + caplen > end:
            return at_eof and ts_known and not first
        if first and not link_plausible(fmt.linktype, bytes(arr[pos - base + 16:pos - base + 16 + caplen])):
            return False
        first = False
        pos += 16 + caplen
    return True


class Damage:
    """What a read has met so far (``pcapio``): the time span of its packets (seconds) and the byte ranges
    skipped over damage (start inclusive, end exclusive)."""

    __slots__ = ("first_sec", "last_sec", "packets", "reported", "skipped")

    def __init__(self) -> None:
        self.first_sec: int | None = None
        self.last_sec: int | None = None
        self.packets = 0
        self.skipped: list[tuple[int, int]] = []
        self.reported = False

    def saw(self, batch: RawBatch) -> None:
        if len(batch):
            lo, hi = int(batch.ts.min()) // 1_000_000_000, int(batch.ts.max()) // 1_000_000_000
            self.first_sec = lo if self.first_sec is None else min(self.first_sec, lo)
            self.last_sec = hi if self.last_sec is None else max(self.last_sec, hi)
            self.packets += len(batch)


def resync(src, pos: int, fmt: RecordFormat, damage: Damage) -> int | None:
    """The offset of the next resynchronisation point after a bad record at ``pos`` in ``src``
    (a ``pcapng.Source``: a buffered window on the file), or None."""
    ts = ts_window(damage.first_sec, damage.last_sec)
    lo = pos + 1
    ahead = WINDOW + fmt.lookahead()
    while True:
        more = src.fill(lo + ahead)
        found = find_next(src.buf, src.base, lo, src.end, fmt, ts, at_eof=not more)
        if found is not None or not more:
            return found
        lo = max(lo, src.end - fmt.lookahead() + 1)
        src.drop(lo)


def ts_window(first_sec: int | None, last_sec: int | None) -> tuple[int, int] | None:
    """The timestamps (s) a record after damage may carry, given the file's packets so far."""
    if first_sec is None or last_sec is None:
        return None
    return first_sec - TS_BEFORE_S, last_sec + TS_AFTER_S


def describe(ranges: list[tuple[int, int]], shown: int = 5) -> str:
    """``"3 damaged ranges (712 bytes) skipped at offsets 1000-1300, ..."``."""
    total = sum(b - a for a, b in ranges)
    parts = ", ".join(f"{a}-{b}" for a, b in ranges[:shown])
    more = f" and {len(ranges) - shown} more" if len(ranges) > shown else ""
    plural = "" if len(ranges) == 1 else "s"
    return f"{len(ranges)} damaged range{plural} ({total} bytes) skipped at offset{plural} {parts}{more}"


def skipped_fields(ranges: list[tuple[int, int]]) -> dict[str, object]:
    """A capture row's ``skipped_ranges`` ("start-end ...") and ``skipped_bytes``; {} for none."""
    if not ranges:
        return {}
    return {"skipped_ranges": " ".join(f"{a}-{b}" for a, b in ranges), "skipped_bytes": sum(b - a for a, b in ranges)}
