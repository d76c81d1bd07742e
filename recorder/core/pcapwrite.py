"""Writing pcap records in batches, and repairing a pcap file a crash left half-written.

The recorder writes classic little-endian microsecond pcap (what every tool reads): one file
header, then for each packet a 16-byte record header and the captured bytes. ``encode_records``
turns a slice of a RawBatch into those bytes with numpy (no per-packet Python when the batch's
packets lie back to back, as libpcap's batches do). ``scan_pcap`` walks a file's records and
stops at the first one that is not whole; ``repair_pcap`` truncates the file there.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numpy as np

from recorder.core.batch import RawBatch
from recorder.core.errors import CaptureError

PCAP_MAGIC_US = 0xA1B2C3D4
FILE_HEADER_LEN = 24
RECORD_HEADER_LEN = 16
_FILE_HEADER = struct.Struct("<IHHiIII")
_RECORD = np.dtype([("sec", "<u4"), ("frac", "<u4"), ("caplen", "<u4"), ("wirelen", "<u4")])


def file_header(linktype: int, snaplen: int) -> bytes:
    """The 24-byte header of a little-endian microsecond pcap file."""
    return _FILE_HEADER.pack(PCAP_MAGIC_US, 2, 4, 0, 0, snaplen, linktype)


def record_sizes(raw: RawBatch) -> np.ndarray:
    """Bytes each packet of ``raw`` takes in a pcap file (record header + captured bytes)."""
    return RECORD_HEADER_LEN + raw.caplen


def encode_records(raw: RawBatch, lo: int = 0, hi: int | None = None) -> bytes:
    """Packets ``lo:hi`` of ``raw`` as pcap records (microsecond timestamps)."""
    hi = len(raw) if hi is None else hi
    n = hi - lo
    if n <= 0:
        return b""
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
        return np.insert(body, at, hbytes.ravel()).tobytes()
    mv = memoryview(raw.data)
    parts: list[bytes | memoryview] = []
    for i in range(n):
        o = int(off[i])
        parts.append(hbytes[i].tobytes())
        parts.append(mv[o:o + int(cap[i])])
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class PcapScan:
    """What a walk over a pcap file's records found."""

    linktype: int
    packets: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    good_size: int  # bytes up to the end of the last whole record
    size: int  # bytes in the file


def scan_pcap(path: str | os.PathLike[str], max_caplen: int = 262144 + 256) -> PcapScan:
    """Walk the records of a microsecond or nanosecond little-endian pcap file (as the recorder
    writes them) and find where the whole records end."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(FILE_HEADER_LEN)
        if len(head) < FILE_HEADER_LEN:
            return PcapScan(0, 0, None, None, 0, size)
        magic, _, _, _, _, _snaplen, linktype = _FILE_HEADER.unpack(head)
        if magic not in (PCAP_MAGIC_US, 0xA1B23C4D):
            raise CaptureError("not a little-endian pcap file written by the recorder", path=str(path), offset=0)
        frac_ns = 1000 if magic == PCAP_MAGIC_US else 1
        pos = FILE_HEADER_LEN
        packets = 0
        first = last = None
        rec = struct.Struct("<IIII")
        while True:
            h = f.read(RECORD_HEADER_LEN)
            if len(h) < RECORD_HEADER_LEN:
                break
            sec, frac, caplen, _wire = rec.unpack(h)
            if caplen > max_caplen or pos + RECORD_HEADER_LEN + caplen > size:
                break
            f.seek(caplen, os.SEEK_CUR)
            pos += RECORD_HEADER_LEN + caplen
            ts = sec * 1_000_000_000 + frac * frac_ns
            first = ts if first is None else first
            last = ts
            packets += 1
    return PcapScan(linktype, packets, first, last, pos, size)


def repair_pcap(path: str | os.PathLike[str]) -> PcapScan:
    """Truncate a pcap file to its last whole record (a crash may have cut one short); a file
    shorter than its header is given one. Returns the scan of the repaired file."""
    scan = scan_pcap(path)
    with open(path, "r+b") as f:
        if scan.good_size < FILE_HEADER_LEN:
            f.truncate(0)
            f.write(file_header(1, 262144))
            good = FILE_HEADER_LEN
        else:
            good = scan.good_size
            f.truncate(good)
        f.flush()
        os.fsync(f.fileno())
    return PcapScan(scan.linktype or 1, scan.packets, scan.first_ts_ns, scan.last_ts_ns, good, good)
