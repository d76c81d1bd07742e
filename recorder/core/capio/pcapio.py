"""Capture file I/O: read pcap, pcapng and gzip-compressed captures as RawBatches; write pcap.

Reading has two paths that give identical batches:

* a fast path for plain microsecond pcap (the common case): libpcap via pcapy-ng reads packets
  in batches; record offsets follow from the caplens and wirelen is gathered from a memory map
  of the file. Any doubt (a libpcap error, a caplen that does not match the file) hands over to
* the pure-Python path, which handles every format and is the reference for the fast one.

A damaged classic pcap (a corrupt record header: a sensor that lost power, a bad sector, a file
carved from an image) is read past the damage like pcapfix does: the reader searches forward for
the next plausible record (``pcaprecords``) and goes on from there; the skipped byte ranges are
reported in one DamagedCaptureWarning per file, which carries them. A truncated capture, or a
damaged one with no plausible record after the damage, yields every complete packet, then
reports one CaptureWarning naming the byte offset of the bad record and stops. A file that is not
a capture raises CaptureError before anything is yielded.
"""

from __future__ import annotations

import glob
import gzip
import logging
import mmap
import os
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Self

import numpy as np

from recorder.core.batch import RawBatch
from recorder.core.capio import pcapng
from recorder.core.capio.pcaprecords import MAX_CAPLEN, Damage, RecordFormat, describe, plausible, resync
from recorder.core.capio.pcaprecords import problem as record_problem
from recorder.core.errors import CaptureError, CaptureWarning, DamagedCaptureWarning
from recorder.core.secure_files import AtomicFile

log = logging.getLogger(__name__)

WarnFn = Callable[[CaptureWarning], None]

SNAPLEN_SLACK = 256  # tolerated excess of a record's caplen over the file's snaplen
CHUNK = 1 << 20  # read size of the Python path
GZIP_MAGIC = b"\x1f\x8b"
# libpcap rewrites the packet bytes or lengths of these link types (Linux cooked, USB, NFLOG)
_LIBPCAP_FIXUPS = frozenset({113, 189, 220, 239, 276})
_PCAP_MAGICS = {  # first four bytes -> (byte order, nanosecond)
    b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True),
}
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_FORMATS = ("pcap", "pcapng", "pcap.gz", "pcapng.gz")
_HDR16 = np.arange(16, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class CaptureInfo:
    """What a capture file is, from its headers (see :func:`probe`)."""

    path: str
    format: str  # "pcap" | "pcapng" | "pcap.gz" | "pcapng.gz"
    linktypes: tuple[int, ...]
    ts_precision_ns: int  # one timestamp tick (pcap: 1000 or 1; pcapng: the finest interface)

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"unknown capture format {self.format!r}")


@dataclass(frozen=True, slots=True)
class _Head:
    """The file header as sniffed: enough to pick a reader."""

    fmt: str  # "pcap" | "pcapng"
    gz: bool
    endian: str = "<"
    nano: bool = False
    version: tuple[int, int] = (2, 4)
    snaplen: int = 0
    linktype: int = 0

    @property
    def caplen_limit(self) -> int:
        if self.snaplen == 0:
            return MAX_CAPLEN
        return min(MAX_CAPLEN, self.snaplen + SNAPLEN_SLACK)

    @property
    def u4(self) -> np.dtype:
        return np.dtype(self.endian + "u4")

    def record_format(self) -> RecordFormat:
        return RecordFormat(self.endian, self.nano, self.caplen_limit, self.linktype)


class _ByteStream:
    """A forward-only window on a binary stream (gzip); positions are absolute offsets in it."""

    __slots__ = ("_eof", "_read", "base", "buf", "end", "error")

    def __init__(self, read: Callable[[int], bytes]) -> None:
        self.buf = bytearray()
        self.base = 0
        self.end = 0
        self.error: str | None = None
        self._read = read
        self._eof = False

    def fill(self, end: int) -> bool:
        """Buffer the stream up to ``end``; False if it ends (or fails) first."""
        while self.end < end:
            if self._eof:
                return False
            try:
                data = self._read(max(CHUNK, end - self.end))
            except (OSError, EOFError, zlib.error) as e:  # gzip: truncated or corrupt stream
                self.error = str(e)
                data = b""
            if not data:
                self._eof = True
                return False
            self.buf += data
            self.end += len(data)
        return True

    def drop(self, upto: int) -> None:
        del self.buf[:upto - self.base]
        self.base = upto

    def get(self, start: int, end: int) -> bytes:
        with memoryview(self.buf) as view:
            return bytes(view[start - self.base:end - self.base])


class _MappedFile:
    """A plain file as a Source: the whole file is memory-mapped, so fill and drop are free."""

    __slots__ = ("base", "buf", "end", "error")

    def __init__(self, mm: mmap.mmap) -> None:
        self.buf = mm
        self.base = 0
        self.end = len(mm)
        self.error: str | None = None

    def fill(self, end: int) -> bool:
        return end <= self.end

    def drop(self, upto: int) -> None:
        pass

    def get(self, start: int, end: int) -> bytes:
        return self.buf[start:end]


def _open_file(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except OSError as e:
        raise CaptureError(f"cannot open: {e.strerror or e}", path=path) from e


@contextmanager
def _source(path: str) -> Iterator[tuple[pcapng.Source, bool]]:
    """Open ``path`` as a Source: ``(source, gz)``. gzip (by magic) is read with read1, so a
    damaged tail loses no data; a plain file is memory-mapped when it can be."""
    with _open_file(path) as f:
        if f.read(2) == GZIP_MAGIC:
            f.seek(0)
            with gzip.GzipFile(fileobj=f, mode="rb") as gz:
                yield _ByteStream(gz.read1), True
            return
        f.seek(0)
        try:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # empty file, pipe, ...
            yield _ByteStream(f.read), False
            return
        with mm:
            yield _MappedFile(mm), False


def _sniff(path: str) -> _Head:
    """Read and check the file header; CaptureError if this is not a capture we can read."""
    with _source(path) as (src, gz):
        src.fill(28)
        head = src.get(0, min(28, src.end))
        error = src.error
    what = "gzip stream" if gz else "file"
    if error and len(head) < 28:
        raise CaptureError(f"unreadable gzip stream: {error}", path=path)
    if not head:
        raise CaptureError(f"empty {what}", path=path)
    if len(head) < 4:
        raise CaptureError(f"not a capture: {what} too short ({len(head)} bytes)", path=path)
    magic = head[:4]
    if magic in _PCAP_MAGICS:
        endian, nano = _PCAP_MAGICS[magic]
        if len(head) < 24:
            raise CaptureError(f"truncated pcap file header: {len(head)} of 24 bytes", path=path)
        major, minor, _, _, snaplen, linktype = struct.unpack_from(endian + "HHiIII", head, 4)
        if major != 2:
            raise CaptureError(f"unsupported pcap version {major}.{minor}", path=path)
        return _Head("pcap", gz, endian, nano, (major, minor), snaplen, linktype & 0xFFFF)
    if magic == _PCAPNG_MAGIC:
        if len(head) < 28:
            raise CaptureError(f"truncated pcapng section header: {len(head)} of 28 bytes", path=path)
        bom = head[8:12]
        if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
            raise CaptureError(f"pcapng section header has a bad byte-order magic 0x{bom.hex()}", path=path)
        endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
        major, minor = struct.unpack_from(endian + "HH", head, 12)
        if major != 1:
            raise CaptureError(f"unsupported pcapng version {major}.{minor}", path=path)
        return _Head("pcapng", gz, endian)
    raise CaptureError(f"not a pcap or pcapng file (magic 0x{magic.hex()})", path=path)


def probe(path: str | os.PathLike[str]) -> CaptureInfo:
    """Format, link types and timestamp precision of a capture, from its headers.

    For pcapng the link types are those of the interfaces defined before the first packet
    (where writers put them); RawBatch.linktype is authoritative per packet.
    """
    p = os.fspath(path)
    head = _sniff(p)
    suffix = ".gz" if head.gz else ""
    if head.fmt == "pcap":
        return CaptureInfo(p, "pcap" + suffix, (head.linktype,), 1 if head.nano else 1000)
    with _source(p) as (src, _):
        ifaces = pcapng.leading_interfaces(src)
    linktypes = tuple(dict.fromkeys(i.linktype for i in ifaces))
    precision = min((i.precision_ns for i in ifaces), default=1000)
    return CaptureInfo(p, "pcapng" + suffix, linktypes, precision)


def read_batches(path: str | os.PathLike[str], batch_size: int = 65536,
                 on_warning: WarnFn | None = None, *, fast: bool = True) -> Iterator[RawBatch]:
    """Read one capture file (pcap, pcapng, either gzip-compressed) as RawBatches of ``batch_size``
    packets (the last may be shorter).

    Raises CaptureError now if the file is not a readable capture. A corrupt record header in a
    classic pcap is skipped over to the next plausible record; the skipped ranges come in one
    DamagedCaptureWarning at the end. A truncated record, or damage with no plausible record
    after it, ends the iteration after every complete packet, with one CaptureWarning (naming
    the skipped ranges too, if any). Warnings go to ``on_warning`` (logged if None).
    ``fast=False`` forces the pure-Python path.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    p = os.fspath(path)
    head = _sniff(p)
    warn = on_warning or _log_warning
    damage = Damage()

    def stop(reason: str, offset: int, count: int) -> None:
        plural = "" if count == 1 else "s"
        text = f"{reason}; stopped after {count} packet{plural}"
        damage.reported = True
        if damage.skipped:
            warn(DamagedCaptureWarning(f"{text}; before that {describe(damage.skipped)}", path=p,
                                       offset=offset, skipped=damage.skipped))
        else:
            warn(CaptureWarning(text, path=p, offset=offset))

    if fast and _fast_ok(head):
        return _reported(_read_pcap_fast(p, head, batch_size, stop, damage), damage, warn, p)
    return _reported(_read_python(p, head, batch_size, stop, damage), damage, warn, p)


def _reported(batches: Iterator[RawBatch], damage: Damage, warn: WarnFn, path: str) -> Iterator[RawBatch]:
    """Pass the batches on, noting their time span; then one warning for the skipped ranges."""
    for batch in batches:
        damage.saw(batch)
        yield batch
    if damage.skipped and not damage.reported:
        plural = "" if damage.packets == 1 else "s"
        warn(DamagedCaptureWarning(f"{describe(damage.skipped)}; resynchronised, read {damage.packets} "
                                   f"packet{plural}", path=path, offset=damage.skipped[0][0],
                                   skipped=damage.skipped))


def _log_warning(w: CaptureWarning) -> None:
    log.warning("%s", w)


def _read_python(path: str, head: _Head, batch_size: int, stop: pcapng.StopFn,
                 damage: Damage) -> Iterator[RawBatch]:
    with _source(path) as (src, _):
        if head.fmt == "pcapng":
            yield from pcapng.read_pcapng(src, path, batch_size, stop, damage)
        else:
            src.fill(24)
            src.drop(24)
            yield from _read_pcap_py(src, 24, head, path, batch_size, 0, stop, damage)


def _read_pcap_py(src: pcapng.Source, pos: int, head: _Head, path: str, batch_size: int, index: int,
                  stop: pcapng.StopFn, damage: Damage, prefix: RawBatch | None = None) -> Iterator[RawBatch]:
    """Classic pcap records from offset ``pos`` on; ``prefix`` (packets already read by the fast
    path) is joined to the first batch so batch boundaries match a pure-Python read. A record
    that is not plausible (``pcaprecords``) or runs past the end ends the batch; reading goes on
    from the next resynchronisation point, if there is one."""
    unpack = struct.Struct(head.endian + "IIII").unpack_from
    fmt = head.record_format()
    limit, frac_limit = fmt.caplen_limit, fmt.frac_limit
    want = batch_size - (len(prefix) if prefix is not None else 0)
    while True:
        start = pos
        offs: list[int] = []
        problem: str | None = None
        damaged = False  # the problem may be damage with intact records after it
        buf, base, avail, n = src.buf, src.base, src.end, 0  # base only moves between batches
        while n < want:
            if pos + 16 > avail:
                if src.fill(pos + 16):
                    avail = src.end
                    continue
                if src.end > pos:
                    problem = f"truncated record header: {src.end - pos} of 16 bytes"
                elif src.error:
                    problem = f"compressed stream ends early ({src.error})"
                break
            sec, frac, caplen, wirelen = unpack(buf, pos - base)
            if caplen > limit or caplen > wirelen or frac >= frac_limit or not (wirelen or sec or frac):
                problem = f"corrupt record: {record_problem(sec, frac, caplen, wirelen, fmt)} (snaplen {head.snaplen})"
                damaged = True
                break
            nxt = pos + 16 + caplen
            if nxt > avail:
                if not src.fill(nxt):
                    problem = f"truncated record: {src.end - pos - 16} of {caplen} bytes"
                    damaged = True
                    break
                avail = src.end
            offs.append(pos)
            pos = nxt
            n += 1
        batch = _pcap_batch(src.get(start, pos), start, offs, head, path, index) if offs else None
        if prefix is not None:
            batch = prefix if batch is None else _concat(prefix, batch)
            prefix = None
        if batch is not None:
            yield batch
        index += n
        src.drop(pos)
        if problem:
            found = resync(src, pos, fmt, damage) if damaged else None
            if found is None:
                stop(problem, pos, index)
                return
            damage.skipped.append((pos, found))
            pos = found
            want = batch_size
            continue
        if n < want:
            return
        want = batch_size


def _pcap_batch(data: bytes, start: int, offs: list[int], head: _Head, path: str, index: int) -> RawBatch:
    """Build a batch from record offsets, gathering the 16-byte record headers vectorised."""
    rec = np.array(offs, dtype=np.int64)
    rel = rec - start
    hdr = np.frombuffer(data, dtype=np.uint8)[rel[:, None] + _HDR16].view(head.u4).astype(np.int64)
    n = len(offs)
    return RawBatch(
        source=path, data=data, off=rel + 16,
        caplen=hdr[:, 2].copy(), wirelen=hdr[:, 3].copy(),
        ts=hdr[:, 0] * 1_000_000_000 + hdr[:, 1] * (1 if head.nano else 1000),
        linktype=np.full(n, head.linktype, dtype=np.int64),
        file_off=rec, index=np.arange(index, index + n, dtype=np.int64),
    )


def _concat(a: RawBatch, b: RawBatch) -> RawBatch:
    return RawBatch(
        source=a.source, data=a.data + b.data, off=np.concatenate([a.off, b.off + len(a.data)]),
        **{k: np.concatenate([getattr(a, k), getattr(b, k)])
           for k in ("caplen", "wirelen", "ts", "linktype", "file_off", "index")},
    )


def _fast_ok(head: _Head) -> bool:
    if head.fmt != "pcap" or head.gz or head.nano or head.version != (2, 4):
        return False
    if head.linktype in _LIBPCAP_FIXUPS:
        return False
    try:
        import pcapy  # noqa: F401
    except ImportError:
        return False
    return True


def _read_pcap_fast(path: str, head: _Head, batch_size: int, stop: pcapng.StopFn,
                    damage: Damage) -> Iterator[RawBatch]:
    """libpcap batches; offsets from cumulative caplens, checked against (and wirelen read from)
    a memory map of the file. On any disagreement, the Python path continues from that record."""
    import pcapy

    size = os.path.getsize(path)
    with open(path, "rb") as f:
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    mm = np.frombuffer(mapping, dtype=np.uint8)
    try:
        reader = pcapy.open_offline(path)
    except pcapy.PcapError:  # libpcap refuses a header the Python path accepts
        del mm
        mapping.close()
        yield from _read_python(path, head, batch_size, stop, damage)
        return
    fmt = head.record_format()
    pos, index = 24, 0
    prefix: RawBatch | None = None
    try:
        while True:
            try:
                data, meta = reader.next_batch(batch_size)
            except pcapy.PcapError:  # truncated or corrupt: libpcap drops the whole batch
                break
            if not meta:
                break
            m = np.frombuffer(meta, dtype=np.uint32).reshape(-1, 4).astype(np.int64)
            caplen = m[:, 3]
            rec = pos + np.concatenate(([0], np.cumsum(16 + caplen[:-1])))
            good = rec + 16 <= size
            hdr = np.zeros((len(rec), 4), dtype=np.int64)
            if good.any():
                idx = rec[good][:, None] + _HDR16
                hdr[good] = np.asarray(mm[idx]).view(head.u4).astype(np.int64)
            good &= (hdr[:, 2] == caplen) & plausible(hdr, fmt)
            lens = hdr[:, 2:]
            k = len(rec) if good.all() else int(np.argmin(good))
            if k:
                batch = RawBatch(
                    source=path, data=data, off=m[:k, 2].copy(), caplen=caplen[:k].copy(),
                    wirelen=lens[:k, 1].copy(), ts=m[:k, 0] * 1_000_000_000 + m[:k, 1] * 1000,
                    linktype=np.full(k, head.linktype, dtype=np.int64), file_off=rec[:k].copy(),
                    index=np.arange(index, index + k, dtype=np.int64), in_file=True,
                )
                index += k
                pos = int(rec[k - 1] + 16 + caplen[k - 1])
                # only record headers were read through the map: give those pages back, so a
                # large file does not grow the process's resident memory as it is read
                done = pos - pos % mmap.PAGESIZE
                if done:
                    mapping.madvise(mmap.MADV_DONTNEED, 0, done)
                if k == len(rec):
                    yield batch
                    continue
                prefix = batch
            break
    finally:
        reader.close()
        del mm
        mapping.close()
    if pos == size and prefix is None:
        return
    with _source(path) as (src, _):  # hand over to the Python path at the first doubtful record
        src.fill(pos)  # no-op on a memory-mapped file; skips ahead on a stream
        src.drop(pos)
        yield from _read_pcap_py(src, pos, head, path, batch_size, index, stop, damage, prefix)


def expand_inputs(args: Sequence[str]) -> list[str]:
    """Capture files named by ``args`` (files, directories, glob patterns), in the order of each
    file's first packet timestamp (ties and empty files by name), without duplicates.

    Directories contribute their top-level, non-hidden capture files and glob patterns their
    matching capture files (recognised by magic). Raises CaptureError for a missing path, a
    pattern or directory with no captures, or a named file that is not a capture.
    """
    found: list[str] = []
    for arg in args:
        if os.path.isdir(arg):
            names = sorted(n for n in os.listdir(arg) if not n.startswith("."))
            files = [p for p in (os.path.join(arg, n) for n in names) if os.path.isfile(p) and _is_capture(p)]
            if not files:
                raise CaptureError("no capture files in this directory", path=arg)
            found += files
        elif os.path.exists(arg):
            found.append(arg)
        elif any(c in arg for c in "*?["):
            files = [p for p in sorted(glob.glob(arg)) if os.path.isfile(p) and _is_capture(p)]
            if not files:
                raise CaptureError("no capture files match this pattern", path=arg)
            found += files
        else:
            raise CaptureError("no such file or directory", path=arg)
    unique: dict[str, str] = {}
    for p in found:
        unique.setdefault(os.path.realpath(p), p)
    return sorted(unique.values(), key=_first_ts_key)


def _is_capture(path: str) -> bool:
    try:
        _sniff(path)
    except CaptureError:
        return False
    return True


def _first_ts_key(path: str) -> tuple[int, int, str]:
    batches = read_batches(path, batch_size=1, on_warning=lambda w: None, fast=False)
    try:
        first = next(batches, None)
    finally:
        batches.close()  # type: ignore[attr-defined]
    return (0, int(first.ts[0]), path) if first is not None else (1, 0, path)


class PcapWriter:
    """Write a classic little-endian pcap file, like dpkt's ``pcap.Writer``.

    ``fileobj_or_path`` is a path or a binary file object (flushed, left open). A path is written
    owner-only (0600) under a temporary name and renamed into place by :meth:`close`; leaving a
    ``with`` block by an exception (or :meth:`discard`) removes it, so no half-written file is left
    at the path. Packets longer than ``snaplen`` are cut to it.
    """

    def __init__(self, fileobj_or_path: str | os.PathLike[str] | BinaryIO, linktype: int = 1,
                 snaplen: int = 262144, nanosecond: bool = False) -> None:
        self._out: AtomicFile | None = None
        if isinstance(fileobj_or_path, (str, os.PathLike)):
            self._out = AtomicFile(fileobj_or_path)
            self._f: BinaryIO = self._out.file  # type: ignore[assignment]
        else:
            self._f = fileobj_or_path
        self._snaplen = snaplen
        self._nano = nanosecond
        self._hdr = struct.Struct("<IIII")
        magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        self.closed = False

    def write(self, ts_ns: int, data: bytes, wirelen: int | None = None) -> None:
        """Append one packet; ``ts_ns`` is nanoseconds since the epoch (cut to microseconds
        unless the file is nanosecond)."""
        sec, frac = divmod(ts_ns, 1_000_000_000)
        if not 0 <= sec <= 0xFFFFFFFF:
            raise ValueError(f"timestamp {ts_ns} ns is outside the pcap range")
        caplen = min(len(data), self._snaplen)
        self._f.write(self._hdr.pack(sec, frac if self._nano else frac // 1000, caplen,
                                     len(data) if wirelen is None else wirelen))
        self._f.write(data[:caplen])

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._out is not None:
            self._out.commit()
        else:
            self._f.flush()

    def discard(self) -> None:
        """Give up: a file this writer created is removed (a file object is left as it is)."""
        self.closed = True
        if self._out is not None:
            self._out.discard()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None and not self.closed:
            self.discard()
        else:
            self.close()
