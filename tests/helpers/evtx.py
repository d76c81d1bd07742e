"""Windows event log (.evtx) files written for the tests: a file header, 64 KiB chunks and event
records in Binary XML with every element and attribute name written inline (no templates), as
libyal's format notes and MS-EVEN6 describe them. No public sample set carrying .evtx files
under MIT/Apache was found on PyPI (the ``evtx`` sdists hold none; python-evtx's, evtx2es's and
evtxtract's neither), so the tests build their files here; the reader under test is the real
``evtx`` package.

    data = evtx_file([Record(4624, "2026-01-02T03:04:05.250000Z", {"TargetUserName": "alice"})])
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from datetime import datetime

CHUNK = 0x10000
CHUNK_HEADER = 0x200
FILE_HEADER = 0x1000
XMLNS = "http://schemas.microsoft.com/win/2004/08/events/event"


@dataclass(frozen=True, slots=True)
class Record:
    event_id: int
    time: str  # ISO 8601 UTC, e.g. 2026-01-02T03:04:05.250000Z
    data: dict[str, str | int] = field(default_factory=dict)  # EventData's Data elements, by Name
    channel: str = "Security"
    provider: str = "Microsoft-Windows-Security-Auditing"
    computer: str = "DC1.corp.example"


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _hash(name: str) -> int:
    h = 0
    for ch in name:
        h = (h * 65599 + ord(ch)) & 0xFFFFFFFF
    return h & 0xFFFF


class _Writer:
    """Binary XML of one record; ``base`` is the chunk offset of its first byte (names are
    addressed by their offset in the chunk)."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.out = bytearray()

    def _name(self, name: str) -> None:
        # the name's offset points just past itself: the name follows inline
        self.out += struct.pack("<I", self.base + len(self.out) + 4)
        self.out += struct.pack("<IHH", 0, _hash(name), len(name)) + _utf16(name) + b"\x00\x00"

    def _text(self, text: str | int) -> None:
        if isinstance(text, int):  # a UInt16 (EventID) or UInt32 (LogonType), as Windows types them
            self.out += struct.pack("<BBH", 0x05, 0x06, text) if text < 0x10000 and text > 0xFF \
                else struct.pack("<BBI", 0x05, 0x08, text)
            return
        self.out += struct.pack("<BBH", 0x05, 0x01, len(text)) + _utf16(text)

    def element(self, name: str, attrs: dict[str, str] | None = None, text: str | int | None = None,
                children=None) -> None:
        start = len(self.out)
        self.out += struct.pack("<BI", 0x41 if attrs else 0x01, 0)  # size patched below
        self._name(name)
        if attrs:
            at = len(self.out)
            self.out += b"\x00\x00\x00\x00"
            items = list(attrs.items())
            for i, (key, value) in enumerate(items):
                self.out.append(0x46 if i < len(items) - 1 else 0x06)
                self._name(key)
                self._text(value)
            struct.pack_into("<I", self.out, at, len(self.out) - at - 4)
        if text is None and not children:
            self.out.append(0x03)  # close empty element
        else:
            self.out.append(0x02)  # close start element
            if text is not None:
                self._text(text)
            for child in children or ():
                child(self)
            self.out.append(0x04)  # end element
        struct.pack_into("<I", self.out, start + 1, len(self.out) - start - 5)


def _filetime(iso: str) -> int:
    dt = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (int(dt.timestamp()) + 11644473600) * 10_000_000 + dt.microsecond * 10


def _record(rec: Record, record_id: int, offset: int) -> bytes:
    w = _Writer(offset + 24 + 4)  # after the record header and the fragment header
    system = [
        lambda x: x.element("Provider", {"Name": rec.provider}),
        lambda x: x.element("EventID", text=rec.event_id),
        lambda x: x.element("TimeCreated", {"SystemTime": rec.time}),
        lambda x: x.element("EventRecordID", text=str(record_id)),
        lambda x: x.element("Channel", text=rec.channel),
        lambda x: x.element("Computer", text=rec.computer),
    ]
    data = [(lambda x, k=k, v=v: x.element("Data", {"Name": k}, text=v)) for k, v in rec.data.items()]
    w.element("Event", {"xmlns": XMLNS}, children=[lambda x: x.element("System", children=system),
                                                   lambda x: x.element("EventData", children=data)])
    w.out.append(0x00)  # end of fragment
    body = b"\x0f\x01\x01\x00" + bytes(w.out)
    size = 24 + len(body) + 4
    return struct.pack("<4sIQQ", b"**\x00\x00", size, record_id, _filetime(rec.time)) + body + struct.pack("<I", size)


def _chunk(records: list[Record], first_id: int) -> bytes:
    data = bytearray()
    last_offset = CHUNK_HEADER
    for i, rec in enumerate(records):
        last_offset = CHUNK_HEADER + len(data)
        data += _record(rec, first_id + i, last_offset)
    if CHUNK_HEADER + len(data) > CHUNK:
        raise ValueError("records do not fit one chunk")
    last_id = first_id + len(records) - 1
    head = bytearray(struct.pack("<8sQQQQIIII", b"ElfChnk\x00", first_id, last_id, first_id, last_id, 0x80,
                                 last_offset, CHUNK_HEADER + len(data), zlib.crc32(bytes(data))))
    head += b"\x00" * (CHUNK_HEADER - len(head))
    struct.pack_into("<I", head, 120, 1)  # flags
    struct.pack_into("<I", head, 124, zlib.crc32(bytes(head[:120]) + bytes(head[128:CHUNK_HEADER])))
    return bytes(head) + bytes(data) + b"\x00" * (CHUNK - CHUNK_HEADER - len(data))


def evtx_file(records: list[Record], per_chunk: int = 50) -> bytes:
    """An .evtx file holding ``records`` (record ids from 1), ``per_chunk`` to a chunk."""
    chunks = [_chunk(records[i:i + per_chunk], i + 1) for i in range(0, len(records), per_chunk)] or \
        [_chunk([], 1)]
    head = bytearray(struct.pack("<8sQQQIHHHH", b"ElfFile\x00", 0, len(chunks) - 1, len(records) + 1, 0x80, 1, 3,
                                 FILE_HEADER, len(chunks)))
    head += b"\x00" * (FILE_HEADER - len(head))
    struct.pack_into("<I", head, 120, 0)  # flags: clean
    struct.pack_into("<I", head, 124, zlib.crc32(bytes(head[:120])))
    return bytes(head) + b"".join(chunks)
