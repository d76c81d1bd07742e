"""Writing pcap records in batches, and repairing a pcap file a crash left half-written.

The recorder writes classic little-endian microsecond pcap (what every tool reads): one file
header, then for each packet a 16-byte record header and the captured bytes. ``pack_records``
turns a slice of a RawBatch into those bytes (and where each record starts in them) for the
recorder's writer: compiled, one loop copies each header and packet into one buffer (``_pack``,
typed in Cython's pure-Python mode, bounds-checked); as Python, numpy does it (``_pack_numpy``;
no per-packet Python when the packets lie back to back, as libpcap's batches do), since the
loop would be slower there. ``encode_records`` gives the same as bytes. ``scan_pcap`` walks a file's records with
the reader's plausibility rules (``pcaprecords``) and searches past damage inside as the reader
does; ``repair_pcap`` keeps every good record and cuts the file after the last one.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass

import numpy as np

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.batch import RawBatch
from recorder.core.capio.pcaprecords import MAX_CAPLEN, RecordFormat, find_next, problem, ts_window
from recorder.core.errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD = np.dtype([("sec", "<u4"), ("frac", "<u4"), ("caplen", "<u4"), ("wirelen", "<u4")])
# the item types of _pack's typed memoryviews (Cython's pure-Python mode declares them so)
_U8 = cython.typedef(cython.uchar)
_U8_RO = cython.typedef(cython.const[cython.uchar])
_I64_RO = cython.typedef(cython.const[cython.longlong])


def file_header(linktype: int, snaplen: int) -> bytes:
    """The 24-byte header of a little-endian microsecond pcap file."""
    return _FILE_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def record_sizes(raw: RawBatch) -> np.ndarray:
    """Bytes each packet of ``raw`` takes in a pcap file (record header + captured bytes)."""
    return RECORD_HEADER_LEN + raw.caplen


def encode_records(raw: RawBatch, lo: int = 0, hi: int | None = None) -> bytes:
    """Packets ``lo:hi`` of ``raw`` as pcap records (microsecond timestamps)."""
    hi = len(raw) if hi is None else hi
    return bytes(pack_records(raw, lo, hi)[0]) if hi > lo else b""


def pack_records(raw: RawBatch, lo: int, hi: int) -> tuple[memoryview, np.ndarray]:
    """Packets ``lo:hi`` of ``raw`` (at least one) as pcap records, in a buffer (bytes as
    ``encode_records`` gives them), and the offset of each record in it (int64)."""
    cap = np.asarray(raw.caplen[lo:hi], dtype=np.int64)
    rel = np.empty(len(cap), dtype=np.int64)
    rel[0] = 0
    np.cumsum(RECORD_HEADER_LEN + cap[:-1], out=rel[1:])
    if not cython.compiled:
        return _pack_numpy(raw, lo, hi), rel
    out = np.empty(int(rel[-1] + RECORD_HEADER_LEN + cap[-1]), dtype=np.uint8)  # every byte is written
    _pack(np.frombuffer(raw.data, dtype=np.uint8), np.asarray(raw.off[lo:hi], dtype=np.int64), cap, np.asarray(raw.ts[lo:hi], dtype=np.int64),
          np.asarray(raw.wirelen[lo:hi], dtype=np.int64), out)
    return memoryview(out), rel


@cython.cfunc
@cython.inline
@cython.nogil
@cython.exceptval(-1)
@cython.returns(cython.int)
@cython.locals(out=_U8[:], pos=cython.Py_ssize_t, v=cython.longlong)
def _put_u32(out, pos, v) -> int:
    """``v`` (its low 32 bits) little-endian at ``out[pos:pos + 4]``."""
    out[pos] = v & 0xFF
    out[pos + 1] = (v >> 8) & 0xFF
    out[pos + 2] = (v >> 16) & 0xFF
    out[pos + 3] = (v >> 24) & 0xFF
    return 0


@cython.locals(data=_U8_RO[:], off=_I64_RO[:], cap=_I64_RO[:], ts=_I64_RO[:], wirelen=_I64_RO[:], out=_U8[:],
               n=cython.Py_ssize_t,
               i=cython.Py_ssize_t, pos=cython.Py_ssize_t, o=cython.Py_ssize_t, c=cython.Py_ssize_t,
               t=cython.longlong)
def _pack(data, off, cap, ts, wirelen, out) -> None:
    """Each packet ``data[off[i]:off[i] + cap[i]]`` after its 16-byte record header, one after
    the other into ``out`` (exactly their size; ``data`` and ``out`` uint8 arrays, the others
    int64). A packet not inside ``data`` raises ValueError. Compiled, the memoryviews are
    bounds-checked, each packet is one memcpy, and the loop runs without the GIL (the
    recorder's writer thread packs while its capture thread reads)."""
    n = off.shape[0]
    pos = 0
    with cython.nogil:  # the capture thread runs meanwhile
        for i in range(n):
            t = ts[i]
            o = off[i]
            c = cap[i]
            if o < 0 or c < 0 or o + c > data.shape[0]:  # a slice would be cut short (or broadcast a byte)
                with cython.gil:
                    raise ValueError(f"packet {i} (offset {o}, caplen {c}) is not inside the batch's {data.shape[0]} bytes")
            _put_u32(out, pos, t // 1_000_000_000)
            _put_u32(out, pos + 4, (t % 1_000_000_000) // 1000)
            _put_u32(out, pos + 8, c)
            _put_u32(out, pos + 12, wirelen[i])
            pos += 16  # RECORD_HEADER_LEN, as a C constant
            out[pos:pos + c] = data[o:o + c]
            pos += c


def _pack_numpy(raw: RawBatch, lo: int, hi: int) -> memoryview:
    """``pack_records``' buffer with numpy (as Python, faster than ``_pack``'s loop)."""
    n = hi - lo
    off = raw.off[lo:hi]
    cap = raw.caplen[lo:hi]
    hdr = np.empty(n, dtype=_RECORD)
    ts = raw.ts[lo:hi]
    hdr["sec"] = ts // 1_000_000_000
    hdr["frac"] = (ts % 1_000_000_000) // 1000
    hdr["caplen"] = cap
    hdr["wirelen"] = raw.wirelen[lo:hi]
    hbytes = hdr.view(np.uint8).reshape(n, RECORD_HEADER_LEN)
    start = int(off[0])
    contiguous = bool(np.all(off[1:] == off[:-1] + cap[:-1])) if n > 1 else True
    if contiguous:
        body = np.frombuffer(raw.data, dtype=np.uint8, count=int(cap.sum()), offset=start)
        # each header goes in front of its packet: np.insert places all 16 bytes of header i at
        # the position where packet i starts in the body
        at = np.repeat(off - start, RECORD_HEADER_LEN)
        return memoryview(np.insert(body, at, hbytes.ravel()))
    mv = memoryview(raw.data)
    parts: list[bytes | memoryview] = []
    for i in range(n):
        o = int(off[i])
        parts.append(hbytes[i].tobytes())
        parts.append(mv[o:o + int(cap[i])])
    return memoryview(b"".join(parts))


@dataclass(frozen=True, slots=True)
class PcapScan:
    """What a walk over a pcap file's records found."""

    linktype: int
    packets: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    good_size: int  # bytes of the file header and the whole, plausible records kept
    size: int  # bytes in the file
    skipped: tuple[tuple[int, int], ...] = ()  # damaged ranges (start, end) inside, resynchronised over
    spans: tuple[tuple[int, int], ...] = ()  # the runs of good records (start, end)


def scan_pcap(path: str | os.PathLike[str], max_caplen: int = MAX_CAPLEN + 256, *,
              resync: bool = True) -> PcapScan:
    """Walk the records of a microsecond or nanosecond little-endian pcap file (as the recorder
    writes them) and find the whole, plausible ones (``pcaprecords``, the reader's own rules).
    With ``resync``, damage inside the file (a zero-filled block a power loss left) is searched
    past as the reader does, and the records after it count; otherwise the walk stops there."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER_LEN)
        if len(head) < FILE_HEADER_LEN:
            return PcapScan(0, 0, None, None, 0, size)
        magic, _, _, _, _, _snaplen, linktype = _FILE_HEADER.unpack(head)
        if magic not in (PCAP_MAGIC_US, 0xA1B23C4D):
            raise CaptureError("not a little-endian pcap file written by the recorder", path=str(path), offset=0)
        if size == FILE_HEADER_LEN:
            return PcapScan(linktype, 0, None, None, size, size, (), ())
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            return _walk(mm, size, RecordFormat("<", magic != PCAP_MAGIC_US, max_caplen, linktype), resync)


def _walk(mm, size: int, fmt: RecordFormat, resync: bool) -> PcapScan:
    frac_ns = 1 if fmt.nano else 1000
    unpack = struct.Struct("<IIII").unpack_from
    pos = run = FILE_HEADER_LEN
    packets = 0
    first = last = lo = hi = None
    spans: list[tuple[int, int]] = []
    skipped: list[tuple[int, int]] = []
    while pos + RECORD_HEADER_LEN <= size:
        sec, frac, caplen, wirelen = unpack(mm, pos)
        if problem(sec, frac, caplen, wirelen, fmt) is None and pos + RECORD_HEADER_LEN + caplen <= size:
            ts = sec * 1_000_000_000 + frac * frac_ns
            first = ts if first is None else first
            last = ts
            lo = sec if lo is None else min(lo, sec)
            hi = sec if hi is None else max(hi, sec)
            packets += 1
            pos += RECORD_HEADER_LEN + caplen
            continue
        found = find_next(mm, 0, pos + 1, size, fmt, ts_window(lo, hi), at_eof=True) if resync else None
        if found is None:
            break
        spans.append((run, pos))
        skipped.append((pos, found))
        pos = run = found
    spans.append((run, pos))
    good = FILE_HEADER_LEN + sum(b - a for a, b in spans)
    return PcapScan(fmt.linktype, packets, first, last, good, size, tuple(skipped), tuple(spans))


def repair_pcap(path: str | os.PathLike[str]) -> PcapScan:
    """Make a pcap file a crash left half-written whole: the good records are kept (moved up over
    any damaged range inside, so the file is a valid capture of every intact packet) and the
    file is cut after the last one; a file shorter than its header is given one. Returns the
    scan: ``good_size`` is the repaired file's size, ``size`` the size it had, ``skipped`` the
    damaged ranges taken out (offsets in the file as it was)."""
    scan = scan_pcap(path)
    with open(path, "r+b") as f:
        if scan.good_size < FILE_HEADER_LEN:
            f.truncate(0)
            f.write(file_header(1, 262144))
            good = FILE_HEADER_LEN
        else:
            at = scan.spans[0][1] if scan.spans else FILE_HEADER_LEN
            for a, b in scan.spans[1:]:  # compact: each later run moves up to where the last ended
                src = a
                while src < b:
                    f.seek(src)
                    chunk = f.read(min(4 << 20, b - src))
                    f.seek(at)
                    f.write(chunk)
                    at += len(chunk)
                    src += len(chunk)
            good = scan.good_size
            f.truncate(good)
        f.flush()
        os.fsync(f.fileno())
    return PcapScan(scan.linktype or 1, scan.packets, scan.first_ts_ns, scan.last_ts_ns, good, scan.size, scan.skipped)
