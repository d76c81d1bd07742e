"""What SMB1 and SMB2/3 share about an opened file: its pieces by offset, assembled into the
file that crossed (``OpenFile``), and Windows FILETIME stamps (``filetime``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from recorder.core.apps.dcerpc import RPCSession
from recorder.core.apps.files import merge_spans

MAX_FILE = 64 << 20  # bytes of one file kept for out.file (as FTP data channels)
FILETIME_EPOCH = 116444736000000000  # 1601-01-01 to 1970-01-01 in 100 ns units


def filetime(ft: int) -> float | None:
    """A Windows FILETIME as epoch seconds (None for 0, "never")."""
    return (ft - FILETIME_EPOCH) / 1e7 if ft else None


@dataclass(slots=True)
class OpenFile:
    """One opened file id: its name and, per direction, the pieces seen at their offsets."""

    name: str | None
    pipe: bool
    size: int | None  # EndOfFile from the CREATE response
    path: str | None = None  # the share's UNC path
    times: dict = field(default_factory=dict)  # smb_files.log's times.* from the CREATE response
    pieces: dict[bool, list[tuple[int, bytes]]] = field(default_factory=lambda: {True: [], False: []})
    first: dict[bool, float] = field(default_factory=dict)
    over: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})  # bytes seen, not held
    rpc: RPCSession | None = None  # a named pipe's DCE-RPC association

    def add(self, is_orig: bool, offset: int, data: bytes, ts: float, room: int) -> int:
        """A piece at ``offset``; held only within MAX_FILE and ``room`` (the connection's budget
        left), else counted as seen but not held. Returns the bytes newly held."""
        if not data:
            return 0
        self.first.setdefault(is_orig, ts)
        if offset + len(data) > MAX_FILE or len(data) > room:
            self.over[is_orig] += len(data)
            return 0
        self.pieces[is_orig].append((offset, data))
        return len(data)

    def assemble(self, is_orig: bool) -> tuple[bytes, int]:
        """(the bytes held, in file order, later writes over earlier ones; the bytes missing).
        Holes between pieces are missing bytes, not zeros (so seen_bytes is what was seen, as in
        Zeek and the other parsers' files)."""
        pieces = self.pieces[is_orig]
        spans = merge_spans((o, o + len(d)) for o, d in pieces)
        furthest = spans[-1][1] if spans else 0
        buf = bytearray(furthest)
        for offset, data in pieces:
            buf[offset:offset + len(data)] = data
        if len(spans) == 1 and spans[0][0] == 0:
            return bytes(buf), self.over[is_orig]
        held = b"".join(bytes(buf[a:b]) for a, b in spans)
        return held, furthest - len(held) + self.over[is_orig]
