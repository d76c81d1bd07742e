"""Transferred files: a files.log record from ``Output.file(...)``, and safe extraction to disk.

    rec = file_record(conn, ts=..., data=body, is_orig=False, source="HTTP", index=0)
    rec["fuid"], rec["mime_type"], rec["md5"], ...      # Zeek 6 files.log fields
    name = extract(directory, rec["fuid"], "../../etc/passwd", body, rec["mime_type"])
    # -> "F...-passwd" written under directory, never outside it

Meaning as Zeek's files framework: ``mime_type`` is sniffed from the content (Zeek's own magic
signatures, a small table here), never taken from a header, and only from a body seen from its
first byte; hashes (MD5, SHA1, SHA256) are computed only over a complete body (Zeek's hash
analyzers give up at the first gap).
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import Conn
from recorder.core.secure_files import create_private

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_NAME_BYTES = 120  # of the sanitised original name in an extracted file's name (filesystems allow 255)
SNIFF_BYTES = 4096  # as Zeek's default_file_bof_buffer_size

# --- mime sniffing --------------------------------------------------------------------------

# (prefix, mime type) checked in order; the types Zeek's signatures (base/frameworks/files/magic)
# give. Office Open XML (docx, xlsx) is a zip: application/zip, as libmagic without the OOXML rules.
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "application/x-dosexec"),
    (b"\x7fELF", "application/x-executable"),
    (b"%PDF", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x1f\x8b", "application/x-gzip"),
    (b"BZh", "application/x-bzip2"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/x-rar"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/vnd.ms-office"),  # OLE2: doc, xls, msi
    (b"\xca\xfe\xba\xbe", "application/x-java-applet"),
    (b"\xfe\xed\xfa\xce", "application/x-mach-o-executable"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-o-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-o-executable"),
    (b"{\\rtf1", "text/rtf"),
)
_ZIP = re.compile(rb"PK\x03\x04.{2}", re.S)
# whitespace and comments, one at a time: the same strings as ``(?:[ws]*(?:<!--.*?-->)?[ws]*)*``, whose
# nested repeats backtrack exponentially on a run of whitespace not followed by a match (20 bytes: minutes)
_SPACE = rb"(?:[\r\n \t]|<!--.*?-->)*"
_PREAMBLE = _SPACE + rb"(?:<\?xml .*?\?>" + _SPACE + rb")?"  # as space, xml?, space: one run of space when no xml
_HTML = re.compile(_PREAMBLE + rb"<(?:!doctype +html|html|head|title|body)", re.S | re.I)
_XML = re.compile(_SPACE + rb"<\?xml ", re.S)
_JSON = re.compile(rb"[\r\n \t]*[\[{][\r\n \t]*[\"\[{]")
_PLAIN = re.compile(rb"(?:\xef\xbb\xbf|(?:\x00\x00)?\xfe\xff|\xff\xfe(?:\x00\x00)?)?[\t\n\x0b\x0c\r\x20-\x7e]{10}")
_SCRIPT = re.compile(rb"#! ?/")

EXTENSIONS: dict[str, str] = {
    "application/x-dosexec": "exe", "application/x-executable": "elf", "application/pdf": "pdf",
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "application/x-gzip": "gz",
    "application/x-bzip2": "bz2", "application/x-7z-compressed": "7z", "application/x-rar": "rar",
    "application/vnd.ms-office": "ole", "application/x-java-applet": "class", "application/zip": "zip",
    "application/x-mach-o-executable": "macho", "text/rtf": "rtf", "text/html": "html",
    "application/xml": "xml", "text/json": "json", "text/plain": "txt", "text/x-script": "sh",
}


_WS = b"\r\n \t"
# the bytes each check can match at the start of a body (their patterns' first characters): a
# body's first byte picks the few checks worth running, in the order above
_FIRST: tuple[tuple[bytes | None, re.Pattern | None, bytes, str], ...] = (
    *((prefix, None, prefix[:1], mime) for prefix, mime in _PREFIXES),
    (None, _ZIP, b"P", "application/zip"),
    (None, _HTML, _WS + b"<", "text/html"),
    (None, _XML, _WS + b"<", "application/xml"),
    (None, _JSON, _WS + b"[{", "text/json"),
    (None, _SCRIPT, b"#", "text/x-script"),
    (None, _PLAIN, b"\xef\x00\xfe\xff\t\n\x0b\x0c\r" + bytes(range(0x20, 0x7f)), "text/plain"),
)
_BY_FIRST: tuple[tuple[tuple[bytes | None, re.Pattern | None, str], ...], ...] = tuple(
    tuple((prefix, pattern, mime) for prefix, pattern, firsts, mime in _FIRST if b in firsts) for b in range(256))


def sniff_mime(data: bytes) -> str | None:
    """The mime type of a body from its first bytes, as Zeek's files.log names it; None if unknown.
    Checked in order: the magic prefixes, then zip, HTML, XML, JSON, a script and plain text."""
    if not data:
        return None
    for prefix, pattern, mime in _BY_FIRST[data[0]]:  # only the checks that can match this first byte
        if prefix is not None:
            if data.startswith(prefix):
                return mime
        elif pattern.match(data, 0, SNIFF_BYTES):  # as matching data[:SNIFF_BYTES], without the copy
            return mime
    return None


# --- ids ------------------------------------------------------------------------------------

def base62(n: int) -> str:
    out = []
    while True:
        n, r = divmod(n, 62)
        out.append(_B62[r])
        if n == 0:
            return "".join(reversed(out))


_B62_BYTES = _B62.encode("ascii")
_B62_10 = 62 ** 10  # below 2**63: ten base62 digits in a C integer


@cython.locals(lo=cython.ulonglong, hi=cython.ulonglong, i=cython.int, out=bytearray)
def _base62_17(n: int) -> str:
    """``base62(n)`` zero-padded to 17 digits, for ``0 <= n < 2**96`` (below 62**17): the low ten
    digits and the high seven from two C integers instead of 17 divisions of a Python integer."""
    hi_, lo_ = divmod(n, _B62_10)
    hi, lo = hi_, lo_
    out = bytearray(17)
    for i in range(16, 6, -1):
        out[i] = _B62_BYTES[lo % 62]
        lo //= 62
    for i in range(6, -1, -1):
        out[i] = _B62_BYTES[hi % 62]
        hi //= 62
    return out.decode("ascii")


def make_fuid(conn: Conn, index: int, is_orig: bool) -> str:
    """Zeek's shape (``F`` + base62, 17-18 characters), deterministic: the connection's endpoints,
    start and protocol, which file of the connection this is and its direction."""
    key = f"{conn.proto}|{conn.orig_h}|{conn.orig_p}|{conn.resp_h}|{conn.resp_p}|{conn.start!r}|{index}|{int(is_orig)}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    # base62 of 96 bits has at most 17 digits (2**96 < 62**17): rjust(17, "0")[-17:] is the padding
    return "F" + _base62_17(int.from_bytes(digest[:12], "big"))


# --- the files.log record -------------------------------------------------------------------

def file_record(conn: Conn, *, ts: float, data: bytes, is_orig: bool, source: str, index: int,
                filename: str | None = None, mime_type: str | None = None,
                total_bytes: int | None = None, missing_bytes: int = 0, hashes: bool = True) -> dict:
    """A files.log record (Zeek 6 fields, without ``extracted*``) for one transferred body.

    ``mime_type`` from the parser (a Content-Type) is used only when sniffing finds nothing in a
    body seen whole; Zeek's files.log names what the bytes are, not what the sender claimed.
    Without ``hashes`` a whole body's record names the hash analyzers but leaves their fields
    unset, for the caller to fill with ``add_hashes`` (elsewhere: they are most of the work).
    """
    missing = max(0, int(missing_bytes or 0))
    whole = missing == 0 and (total_bytes is None or total_bytes == len(data))
    mime = sniff_mime(data) if data else None
    if mime is None and whole and data and mime_type:
        mime = mime_type.split(";", 1)[0].strip().lower() or None
    rec: dict = {
        "ts": ts, "fuid": make_fuid(conn, index, is_orig), **conn.ident(), "source": source,
        "depth": 0, "analyzers": [], "mime_type": mime, "filename": filename or None,
        "duration": None, "local_orig": None, "is_orig": is_orig, "seen_bytes": len(data),
        "total_bytes": total_bytes, "missing_bytes": missing, "overflow_bytes": 0, "timedout": False,
        "parent_fuid": None, "md5": None, "sha1": None, "sha256": None,
    }
    if whole:
        rec["analyzers"] = ["MD5", "SHA1", "SHA256"]
        if hashes:
            add_hashes(rec, data)
    return rec


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges (start, end) merged where they overlap or touch, in order."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(x, y) for x, y in merged]


class RangedFile:
    """One file fetched in pieces by byte ranges (HTTP 206), maybe over several connections.

    Pieces are joined by offset. ``seen_bytes`` counts the bytes covered, ``missing_bytes`` the
    holes before the furthest byte seen (Zeek's meaning for files fed at offsets). The MIME type
    comes from the piece at offset 0; hashes and extraction need the whole file, so a file with
    holes (or whose pieces outgrew the byte budget) has neither. ``records`` gives one files.log
    record per connection that carried a piece, all with the file's one fuid, as Zeek logs it.
    """

    def __init__(self, key: str, source: str) -> None:
        self.fuid = "F" + base62(int.from_bytes(hashlib.sha256(f"range|{key}".encode("utf-8", "surrogatepass"))
                                                .digest()[:12], "big")).rjust(17, "0")[-17:]
        self.source = source
        self.lengths: dict[int, int] = {}  # offset -> length of the longest piece seen there
        self.pieces: dict[int, bytes] = {}  # offset -> that piece's bytes, while they are kept
        self.conns: dict[tuple, Conn] = {}
        self.total: int | None = None
        self.first = self.last = 0.0
        self.complete_data = True  # every piece's bytes are held (within the caller's budget)

    def add(self, conn: Conn, ts: float, offset: int, data: bytes, total: int | None, keep: bool = True) -> int:
        """Add a piece; the change in bytes held (when ``keep`` is false only spans are kept from
        then on, and the bytes already held, but the first piece's, are let go)."""
        if not self.conns:
            self.first = self.last = ts
        self.conns.setdefault((conn.proto, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p, conn.start), conn)
        self.first, self.last = min(self.first, ts), max(self.last, ts)
        if total is not None:
            self.total = total
        if len(data) <= self.lengths.get(offset, -1):
            return 0
        self.lengths[offset] = len(data)
        if offset == 0 or (keep and self.complete_data):
            held = len(data) - len(self.pieces.get(offset, b""))
            self.pieces[offset] = bytes(data)
            return held
        freed = sum(len(p) for o, p in self.pieces.items() if o) if self.complete_data else 0
        self.complete_data = False
        self.pieces = {0: self.pieces[0]} if 0 in self.pieces else {}
        return -freed

    def spans(self) -> list[tuple[int, int]]:
        """The byte ranges covered, merged, in order."""
        return merge_spans((o, o + n) for o, n in self.lengths.items())

    def records(self, hashes: bool = True) -> tuple[list[tuple[dict, Conn]], bytes | None]:
        """One record per connection, and the whole file's bytes when it is whole (else None)."""
        spans = self.spans()
        seen = sum(b - a for a, b in spans)
        furthest = spans[-1][1] if spans else 0
        whole = (self.complete_data and len(spans) == 1 and spans[0][0] == 0
                 and (self.total is None or furthest == self.total))
        data = None
        if whole:
            buf = bytearray(furthest)
            for off, piece in sorted(self.pieces.items()):
                buf[off:off + len(piece)] = piece
            data = bytes(buf)
        head = self.pieces.get(0, b"")
        out = []
        for conn in self.conns.values():
            # not whole: an empty stand-in body with a gap, so that file_record names no hash analyzers
            rec = file_record(conn, ts=self.first, data=data if whole else b"", is_orig=False,
                              source=self.source, index=0, total_bytes=self.total,
                              missing_bytes=0 if whole else 1, hashes=hashes)
            rec.update(fuid=self.fuid, seen_bytes=seen, missing_bytes=furthest - seen,
                       mime_type=sniff_mime(head) if head else None,
                       duration=(self.last - self.first) if self.last > self.first else None)
            out.append((rec, conn))
        return out, data


def add_hashes(rec: dict, data: bytes) -> None:
    """The MD5, SHA1 and SHA256 fields of a files.log record, of the whole body ``data``."""
    rec["md5"] = hashlib.md5(data, usedforsecurity=False).hexdigest()
    rec["sha1"] = hashlib.sha1(data, usedforsecurity=False).hexdigest()
    rec["sha256"] = hashlib.sha256(data).hexdigest()


# --- extraction -----------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^\w.+()\- ]", re.UNICODE)


def safe_name(fuid: str, filename: str | None, mime_type: str | None) -> str:
    """``<fuid>-<sanitised basename or 'file'>[.<ext>]``: one path component, printable, no
    leading dot, at most MAX_NAME_BYTES of the original name; the extension from the mime type
    when the name has none."""
    base = filename or ""
    base = re.split(r"[/\\]", base)[-1]  # the last component of a Unix or Windows path
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C")  # controls, NUL, surrogates
    base = _UNSAFE.sub("_", base).strip(" .")
    base = re.sub(r"\.{2,}", ".", base)
    stem, dot, ext = base.rpartition(".")
    if not dot or len(ext) > 10:
        stem, dot, ext = base, "", ""
    while stem and len((stem + dot + ext).encode("utf-8")) > MAX_NAME_BYTES:  # the extension survives
        stem = stem[:-1]
    base = (stem.strip(" .") + dot + ext).strip(" .") if stem.strip(" .") else ""
    base = base or "file"
    if "." not in base:
        base += "." + EXTENSIONS.get(mime_type or "", "bin")
    return f"{fuid}-{base}"


def extract(directory: str | os.PathLike, fuid: str, filename: str | None, data: bytes,
            mime_type: str | None) -> str:
    """Write ``data`` under ``directory`` with a safe name; returns the name (relative to the
    directory). Never follows a symlink or overwrites a file: an existing name with other content
    gets ``-1``, ``-2``, ... Raises OSError."""
    root = Path(directory)
    name = safe_name(fuid, filename, mime_type)
    stem, dot, ext = name.rpartition(".")
    for n in range(1000):
        candidate = name if n == 0 else f"{stem}-{n}{dot}{ext}"
        path = root / candidate
        try:
            fd = create_private(path)  # 0600 whatever the umask; never follows a symlink
        except FileExistsError:
            if not path.is_symlink() and path.is_file() and path.stat().st_size == len(data) \
                    and path.read_bytes() == data:
                return candidate  # the same file, extracted by an earlier run
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return candidate
    raise FileExistsError(f"too many files named {name} in {root}")
