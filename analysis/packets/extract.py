"""Read the packets of chosen flows from the capture files, through the packet index, and write
them as pcap or pcapng.

Only the byte ranges the index names are read (adjacent ranges as one read). Each record read
is checked against the index (its length) and the stored file size, so a changed file is
refused rather than read wrong. Packets are kept when their time lies within one of the chosen
flows' [start, start + duration] (the index key is shared by connections of the same
addresses and ports at other times).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from analysis.packets.select import select_flows
from recorder.core.agecrypt import DecryptingReader, is_age
from recorder.core.errors import CaptureError, WiretrailError
from recorder.core.flow.indexformat import (
    PCAPNG_PACKET_HEADER,
    RECORD_HEADER,
    decode_ranges,
    flow_key,
    indexed_header,
    merge_ranges,
)
from recorder.core.secure_files import atomic_output

if TYPE_CHECKING:  # pcapng (and numpy with it) only when a pcapng capture is read; select with SQLAlchemy
    from analysis.packets.selection import Selection
    from recorder.core.capio.pcapng import Interface

_FOREVER = 1 << 62
MAX_READ_GAP = 4096  # ranges closer than this are read as one (fewer system calls, a few bytes more)
FRAGMENT_SLACK_NS = 300 * 10**9  # fragments are kept this long for reassembly (fragments.DEFAULT_TIMEOUT_NS)
_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
           b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True)}


@dataclass(frozen=True, slots=True)
class Packet:
    ts_ns: int
    capture_id: int
    offset: int
    header: bytes  # the 16-byte record header as in the file
    data: bytes
    wirelen: int
    linktype: int
    snaplen: int
    nano: bool
    endian: str
    uids: tuple[str, ...]


@dataclass
class ExtractResult:
    packets: int = 0  # read (after the BPF filter, in ``extract``: those written)
    flows: int = 0  # the flows chosen (``extract``)
    bytes_read: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)  # files named by the index that are gone
    unindexed: list[str] = field(default_factory=list)  # the flows' files that have no index (gzip)


@dataclass(frozen=True, slots=True)
class _FileHead:
    endian: str
    nano: bool
    snaplen: int
    linktype: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class _NgHead:
    """A pcapng file's first section: its byte order and the interfaces defined before its
    first packet block (where writers put them)."""

    endian: str
    ifaces: tuple[Interface, ...]


def _ng_head(f, path: str, size: int) -> tuple[_NgHead, int]:
    """The first section's byte order and leading interfaces, and the bytes read for them."""
    from recorder.core.capio.pcapng import BYTE_ORDER_MAGIC, EPB, IDB, PB, SHB, SPB, parse_idb

    pos, endian, ifaces = 0, "<", []
    while pos + 12 <= size:
        f.seek(pos)
        head = f.read(12)
        btype = struct.unpack_from(endian + "I", head)[0]
        if btype == SHB:
            if pos:  # a second section before any packet: keep the first's interfaces
                break
            bom = struct.unpack_from("<I", head, 8)[0]
            if bom not in (BYTE_ORDER_MAGIC, 0x4D3C2B1A):
                break
            endian = "<" if bom == BYTE_ORDER_MAGIC else ">"
        elif btype in (EPB, PB, SPB) or not pos:
            break
        blen = struct.unpack_from(endian + "I", head, 4)[0]
        if blen < 12 or blen & 3 or pos + blen > size:
            break
        if btype == IDB and blen >= 20:
            f.seek(pos)
            ifaces.append(parse_idb(f.read(blen), endian))
        pos += blen
    if not pos:
        raise CaptureError("not a pcapng file any more (its header changed since it was indexed)", path=path)
    return _NgHead(endian, tuple(ifaces)), pos


def _ng_record(head: _NgHead, rec: bytes, off: int, path: str) -> tuple[int, int, int, Interface]:
    """(time ns, captured length, wire length, interface) of the packet
    block ``rec`` (its first 28 bytes and the data) at ``off``."""
    from recorder.core.capio.pcapng import EPB, PB, SPB

    btype, _ = struct.unpack_from(head.endian + "II", rec)
    if btype == EPB:
        iface, hi, lo, caplen, wirelen = struct.unpack_from(head.endian + "5I", rec, 8)
    elif btype == PB:
        iface, _, hi, lo, caplen, wirelen = struct.unpack_from(head.endian + "HH4I", rec, 8)
    else:
        what = "a simple packet block (it has no time stamp)" if btype == SPB else f"block type {btype:#x}"
        raise CaptureError(f"the index names {what} at offset {off}; only enhanced packet blocks are extracted",
                           path=path, offset=off)
    if iface >= len(head.ifaces):
        raise CaptureError(f"the packet block at offset {off} names interface {iface}, which is not defined "
                           "before the first packet (not supported by extract)", path=path, offset=off)
    ifc = head.ifaces[iface]
    if caplen + PCAPNG_PACKET_HEADER != len(rec):
        raise CaptureError(f"changed since it was indexed: the packet block at offset {off} holds {caplen} bytes, "
                           f"the index says {len(rec) - PCAPNG_PACKET_HEADER}", path=path, offset=off)
    return ifc.ts_ns((hi << 32) | lo), caplen, wirelen, ifc


def _file_head(f, path: str) -> _FileHead:
    head = f.read(24)
    if len(head) < 24 or head[:4] not in _MAGICS:
        raise CaptureError("not a classic pcap file any more (its header changed since it was indexed)", path=path)
    endian, nano = _MAGICS[head[:4]]
    _, _, _, _, snaplen, linktype = struct.unpack(endian + "HHiIII", head[4:])
    return _FileHead(endian, nano, snaplen, linktype & 0x0FFFFFFF, head)


def flow_windows(store, flows: Iterable[dict]) -> dict[int, list[tuple[int, int, str]]]:
    """Index key -> [(start ns, end ns, uid)] of the chosen flows. A flow's packets run from its
    first packet until the next connection of the same addresses and ports starts (a final ACK
    can come after the time Zeek's duration ends at)."""
    out: dict[int, list[tuple[int, int, str]]] = {}
    flows = list(flows)
    nexts = store.next_flow_starts(flows)
    for f in flows:
        key = flow_key(int(f["ip_proto"] or 0), bytes(f["orig_a"]), int(f["orig_p"]), bytes(f["resp_a"]),
                       int(f["resp_p"]))
        start = int(f["ts_ns"])
        nxt = nexts[f["uid"]]
        out.setdefault(key, []).append((start, nxt - 1 if nxt is not None else _FOREVER, f["uid"]))
    return out


def read_packets(store, flows: list[dict], *, since: int | None = None, until: int | None = None,
                 on_missing: Callable[[str], None] | None = None, result: ExtractResult | None = None,
                 identities=None) -> list[Packet]:
    """The packets of ``flows`` (rows of the flows table) in time order, within [since, until).
    ``identities`` (age) open encrypted files (``*.pcap.age``), whose index offsets are those of
    the pcap inside: such a file is decrypted as a stream up to its last wanted range."""
    res = result if result is not None else ExtractResult()
    windows = flow_windows(store, flows)
    lo = min((s for w in windows.values() for s, _, _ in w), default=0)
    hi = max((e for w in windows.values() for _, e, _ in w), default=0)
    entries = store.packet_index_entries(windows, since=max(lo, since if since is not None else lo),
                                         until=min(hi, until if until is not None else hi))
    captures = {c["id"]: c for c in store.captures()}
    by_capture: dict[int, list[dict]] = {}
    for e in entries:
        by_capture.setdefault(e["capture_id"], []).append(e)
    for cid in sorted({f["capture_id"] for f in flows if f.get("capture_id") is not None}):
        cap = captures.get(cid)
        if cap is not None and indexed_header(cap.get("format") or "") is None:
            res.unindexed.append(f"{cap['path']} ({cap.get('format')})")
    found: dict[tuple[int, int], Packet] = {}
    for cid, ents in sorted(by_capture.items()):
        cap = captures.get(cid)
        if cap is None:
            continue
        path = cap["path"]
        if cap.get("deleted_at") is not None:  # the recorder's retention removed it
            why = f" ({cap['deleted_reason']})" if cap.get("deleted_reason") else ""
            res.missing.append(f"{path}: deleted by the recorder{why}; its packets are not in the output")
            if on_missing:
                on_missing(res.missing[-1])
            continue
        if not os.path.exists(path):
            raise CaptureError(f"missing: capture {cid} was read from this path (moved or deleted since?)", path=path)
        ranges: dict[int, tuple[int, list[tuple[int, int, str]]]] = {}
        for e in ents:
            win = windows[int(e["key_hash"])]
            try:
                for off, length, early in decode_ranges(bytes(e["ranges"])):
                    ranges[off] = (length, win, early)
            except ValueError as err:
                raise WiretrailError(f"packet index of capture {cid} is damaged: {err}", path=store.display) from err
        res.files += 1
        _read_file(path, cap, ranges, since, until, found, res, identities)
    packets = sorted(found.values(), key=lambda p: (p.ts_ns, p.capture_id, p.offset))
    res.packets = len(packets)
    return packets


def _read_file(path: str, cap: dict, ranges: dict, since: int | None, until: int | None,
               found: dict, res: ExtractResult, identities=None) -> None:
    cid = int(cap["id"])
    try:
        size = os.path.getsize(path)
        encrypted = is_age(path)
        if encrypted and not identities:
            raise CaptureError("encrypted (age); give the private key with --identity KEYFILE", path=path)
        f = DecryptingReader(path, identities) if encrypted else open(path, "rb")  # noqa: SIM115 - closed below
        if not encrypted and hasattr(os, "posix_fadvise"):  # no read-ahead: only the ranges are wanted
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_RANDOM)
    except OSError as err:
        raise CaptureError(f"cannot read: {err.strerror or err}", path=path) from err
    with f:
        if cap.get("bytes") is not None and size != int(cap["bytes"]):
            raise CaptureError(f"changed since it was indexed as capture {cid} ({cap['bytes']} bytes then, "
                               f"{size} now); refusing to extract from it", path=path)
        before = res.bytes_read
        _read_ranges(f, path, cap, size, ranges, since, until, found, res)
        if encrypted:  # read from disk: the encrypted file up to the last range (and the decryptor's read-ahead)
            res.bytes_read = before + f.cipher_read


def _read_ranges(f, path: str, cap: dict, size: int, ranges: dict, since: int | None, until: int | None,
                 found: dict, res: ExtractResult) -> None:
    """The indexed records of one open capture (pcap, or pcapng rebuilt as pcap records) into
    ``found``; ``size`` bounds the pcapng header's walk."""
    cid = int(cap["id"])
    if cap.get("format") == "pcapng":
        ng, n = _ng_head(f, path, size)
        res.bytes_read += n
        head = None
    else:
        head = _file_head(f, path)
        res.bytes_read += 24
    hdr = struct.Struct((head.endian if head else "<") + "IIII")
    for start, length in merge_ranges([(o, v[0]) for o, v in ranges.items()], MAX_READ_GAP):
        f.seek(start)
        block = f.read(length)
        res.bytes_read += len(block)
        if len(block) != length:
            raise CaptureError(f"changed since it was indexed: offset {start + len(block)} is past its end",
                               path=path, offset=start + len(block))
        for off in sorted(o for o in ranges if start <= o < start + length):
            n, win, early = ranges[off]
            rec = block[off - start:off - start + n]
            if head is None:  # pcapng: a pcap record made of the packet block's fields
                ts, caplen, wirelen, ifc = _ng_record(ng, rec, off, path)
                nano = ifc.precision_ns < 1000 or ifc.offset_ns % 1000 != 0
                sec, frac = divmod(ts, 1_000_000_000)
                rec = hdr.pack(sec, frac if nano else frac // 1000, caplen, wirelen) + rec[PCAPNG_PACKET_HEADER:]
                form = (ifc.linktype, ifc.snaplen or 262144, nano, "<")
            else:
                sec, frac, caplen, wirelen = hdr.unpack_from(rec)
                if caplen + RECORD_HEADER != n:
                    raise CaptureError(f"changed since it was indexed: the record at offset {off} is "
                                       f"{caplen} bytes, the index says {n - RECORD_HEADER}", path=path, offset=off)
                ts = sec * 1_000_000_000 + (frac if head.nano else frac * 1000)
                form = (head.linktype, head.snaplen, head.nano, head.endian)
            slack = FRAGMENT_SLACK_NS if early else 0  # an early fragment comes before its flow's start
            uids = tuple(u for s, e, u in win if s - slack <= ts <= e)
            if not uids or (since is not None and ts < since) or (until is not None and ts >= until):
                continue
            key = (cid, off)
            old = found.get(key)
            if old is not None:
                uids = tuple(dict.fromkeys(old.uids + uids))
            found[key] = Packet(ts, cid, off, rec[:RECORD_HEADER], rec[RECORD_HEADER:], wirelen, *form, uids)


def extract(store, selection: Selection, out: str, *, bpf: str | None = None, pcapng: bool = False,
            on_missing: Callable[[str], None] | None = None, identities=None) -> ExtractResult:
    """Write the packets of the flows ``selection`` chooses, in time order, into ``out`` as pcap
    (or pcapng with per-packet uid comments), keeping only those the ``bpf`` filter accepts when
    one is given. ``store`` is a Store, or the lean reader of a SQLite file (``lite.open_lite``)
    for a selection by uid or Community ID only; ``identities`` open encrypted (age) captures.
    ``on_missing`` is told of each capture file retention deleted. Raises WiretrailError when no
    packet is left to write (saying why when it can)."""
    chosen = select_flows(store, selection)
    res = ExtractResult(flows=len(chosen))
    packets = read_packets(store, chosen, since=selection.since, until=selection.until, on_missing=on_missing,
                           result=res, identities=identities)
    if bpf:
        packets = filter_bpf(packets, bpf)
    if not packets:
        why = (f" (compressed captures are not indexed, a gzip stream cannot be read from the middle: gunzip "
               f"and ingest the file to extract from it: {', '.join(res.unindexed)})" if res.unindexed
               else " (some files are gone)" if res.missing else "")
        raise WiretrailError(f"no packets of the {len(chosen)} flow(s) chosen are in the indexed capture files{why}")
    (write_pcapng if pcapng else write_pcap)(out, packets)
    res.packets = len(packets)
    return res


def filter_bpf(packets: list[Packet], expr: str) -> list[Packet]:
    """The packets the BPF expression accepts, compiled once per link type."""
    keep: dict[int, Callable[[bytes], bool]] = {}
    for p in packets:
        if p.linktype not in keep:
            keep[p.linktype] = bpf_filter(expr, p.linktype)
    return [p for p in packets if keep[p.linktype](p.data)]


def bpf_filter(expr: str, linktype: int, snaplen: int = 262144):
    """A predicate on packet bytes from libpcap's compiler (as tcpdump's filter). Raises
    WiretrailError for an expression libpcap rejects."""
    try:
        import pcapy
    except ImportError as err:  # pragma: no cover - a dependency
        raise WiretrailError("--bpf needs pcapy-ng (pip install pcapy-ng)") from err
    try:
        prog = pcapy.compile(linktype, snaplen, expr, 1, 0xFFFFFFFF)
    except pcapy.PcapError as err:
        raise WiretrailError(f"--bpf {expr!r}: {err}") from err
    return lambda data: prog.filter(data) != 0


def write_pcap(path: str, packets: list[Packet]) -> None:
    """Classic pcap: the records as they are in the files when all share one format (byte
    identical), re-encoded in the first packet's format otherwise."""
    linktypes = {p.linktype for p in packets}
    if len(linktypes) > 1:
        raise WiretrailError(f"the packets have several link types ({', '.join(map(str, sorted(linktypes)))}); "
                             "use --pcapng", path=path)
    first = packets[0] if packets else None
    endian, nano = (first.endian, first.nano) if first else ("<", False)
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    linktype = first.linktype if first else 1
    hdr = struct.Struct(endian + "IIII")
    with atomic_output(path) as out:
        snaplen = max((p.snaplen for p in packets), default=262144)
        out.write(struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for p in packets:
            if p.endian == endian and p.nano == nano:
                out.write(p.header)
            else:
                sec, ns = divmod(p.ts_ns, 1_000_000_000)
                out.write(hdr.pack(sec, ns if nano else ns // 1000, len(p.data), p.wirelen))
            out.write(p.data)


def _pad(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


def write_pcapng(path: str, packets: list[Packet]) -> None:
    """pcapng: one interface per link type (nanosecond timestamps), a comment naming the flow
    uid(s) on every packet."""
    ifaces: dict[int, int] = {}
    with atomic_output(path) as out:
        shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        out.write(struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body)))
        for p in packets:
            if p.linktype not in ifaces:
                ifaces[p.linktype] = len(ifaces)
                opts = struct.pack("<HHB", 9, 1, 9) + b"\0\0\0" + struct.pack("<HH", 0, 0)  # if_tsresol = 10^-9
                body = struct.pack("<HHI", p.linktype, 0, 262144) + opts
                out.write(struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
            comment = ("uid " + ",".join(p.uids)).encode()
            opts = struct.pack("<HH", 1, len(comment)) + _pad(comment) + struct.pack("<HH", 0, 0)
            body = (struct.pack("<IIIII", ifaces[p.linktype], p.ts_ns >> 32, p.ts_ns & 0xFFFFFFFF, len(p.data),
                                p.wirelen) + _pad(p.data) + opts)
            out.write(struct.pack("<II", 6, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
