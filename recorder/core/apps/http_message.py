"""HTTP messages as Zeek's analyzer reads them: one request or reply being read (``Message``),
its body's gzip/deflate decoding (``Decoder``), and the small readers both the analyzer
(``apps.http``) and its script half (``apps.http_records``) use: Zeek's ASCII escaping
(``zeek_str``), ``unescape_uri``, version and number parsing, Content-Range, host names, and
the body length Zeek counts for a body read line by line.

Typed for Cython in pure-Python mode (see ``recorder.core.compiled``): ``Message`` is an extension
type with C integer counters, and ``unescape_uri`` reads ``bytes`` on C offsets
(indexes bounds-checked as in Python). The same file runs as Python.
"""

from __future__ import annotations

import ipaddress
import re
import zlib

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.libhtp import HEX_DIGITS, MAX_FILE_BYTES
from recorder.core.purecython import slotted

EOL = re.compile(rb"\r\n|\r|\n")

# Message states, one message per direction at a time.
HEADERS, BODY_LENGTH, BODY_CLOSE, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER = range(7)


def zeek_str(raw: bytes) -> str:
    """Bytes as Zeek's ASCII log shows them: UTF-8 kept, other bytes and controls as \\xNN."""
    text = raw.decode("utf-8", "backslashreplace")
    if text.isascii() and text.isprintable():  # the common case: nothing to escape
        return text
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return text


_HEX_TABLE = bytes(1 if c in HEX_DIGITS else 0 for c in range(256))


@cython.locals(uri=bytes, out=bytearray, i=cython.Py_ssize_t, n=cython.Py_ssize_t, c=cython.int)
def unescape_uri(uri: bytes) -> bytes:
    """Zeek's unescape_URI: %XX and %uXXXX decoded, a stray or doubled % kept as Zeek keeps it."""
    if b"%" not in uri:  # the common case: nothing to decode
        return uri
    out = bytearray()
    i, n = 0, len(uri)
    while i < n:
        c = uri[i]
        if c != 0x25:
            out.append(c)
            i += 1
            continue
        i += 1
        if i == n:
            out.append(0x25)
            break
        if i + 1 == n:
            out += b"%" + uri[i:i + 1]
            break
        if uri[i] == 0x25:  # doubled %: drop the first
            continue
        if _HEX_TABLE[uri[i]] and _HEX_TABLE[uri[i + 1]]:
            out.append(int(uri[i:i + 2], 16))
            i += 2
        elif n - i >= 5 and uri[i] == 0x75 and all(b in HEX_DIGITS for b in uri[i + 1:i + 5]):
            if uri[i + 1:i + 3] != b"00":
                out.append(int(uri[i + 1:i + 3], 16))
            out.append(int(uri[i + 3:i + 5], 16))
            i += 5
        else:
            out += b"%" + uri[i:i + 1]
            i += 1
    return bytes(out)


def version_of(data: bytes) -> tuple[int, int]:
    if len(data) >= 3 and 48 <= data[0] <= 57 and data[1] == 0x2E and 48 <= data[2] <= 57:
        return data[0] - 48, data[2] - 48
    return 0, 0


_TOKEN = frozenset(c for c in range(33, 127) if chr(c) not in '()<>@,;:\\"/[]?={}')
_URI_CHARS = frozenset(b":/?#[]@!$&'()*+,;=-_.~%" + bytes(range(48, 58)) + bytes(range(65, 91))
                       + bytes(range(97, 123)))
_TOKEN_T = bytes(1 if c in _TOKEN else 0 for c in range(256))  # the same sets as tables
_URI_T = bytes(1 if c in _URI_CHARS else 0 for c in range(256))
_WORD_SPACE = re.compile(rb"[^ \t]*[ \t]+")  # a word and the blanks after it (the status line's parts)


@cython.locals(line=bytes, rest=bytes, i=cython.Py_ssize_t, j=cython.Py_ssize_t, k=cython.Py_ssize_t,
               n=cython.Py_ssize_t, end_uri=cython.Py_ssize_t, vs=cython.Py_ssize_t, nrest=cython.Py_ssize_t)
def parse_request_line(line: bytes) -> tuple[str, bytes, tuple[int, int]] | None:
    """A request line's method, URI and version (HTTP.cc's ParseRequest); None when it is not one."""
    i = 0
    n = len(line)
    while i < n and _TOKEN_T[line[i]]:
        i += 1
    if i == 0:
        return None
    j = i
    while j < n and (line[j] == 0x20 or line[j] == 0x09):
        j += 1
    if j == i:
        return None
    rest = line[j:]
    nrest = len(rest)
    k = 0
    while k < nrest and _URI_T[rest[k]]:
        k += 1
    end_uri = k
    if k >= nrest and rest.startswith(b"HTTP/"):
        end_uri = 0  # missing URI
    version: tuple[int, int] | None = None
    vs = end_uri
    while vs < nrest:
        end_uri = vs
        while vs < nrest and (rest[vs] == 0x20 or rest[vs] == 0x09):
            vs += 1
        if rest.startswith(b"HTTP/", vs):
            break
        vs += 1
    if vs >= nrest:
        version = (0, 9)
    elif vs + 8 <= nrest:
        version = version_of(rest[vs + 5:])
    else:
        version = (0, 0)  # bad version: unset
    uri = rest[:end_uri]
    if version == (0, 9) and (i < 3 or not uri):
        return None
    return line[:i].decode("ascii", "replace"), uri, version



def parse_status_line(line: bytes) -> tuple[tuple[int, int], int, str] | None:
    """A status line's version, code and reason (HTTP.cc's ParseReply); None when it is not one."""
    if not line.startswith(b"HTTP/"):
        return None
    rest = line[5:]
    version = version_of(rest)
    m = _WORD_SPACE.match(rest)
    if m is None:
        return None
    rest = rest[m.end():]
    if len(rest) < 3:
        return None
    code = int(rest[:3]) if rest[:3].isascii() and rest[:3].isdigit() else 0
    m = _WORD_SPACE.match(rest, 3)
    if m is None:
        return version, code, "<empty>"
    return version, code, zeek_str(rest[m.end():])



_NUMBER = re.compile(rb"\s*([0-9]+)")
_HEX_NUMBER = re.compile(rb"\s*([0-9a-fA-F]+)")


def atoi(value: bytes, base: int = 10) -> int | None:
    """Leading digits of the first token, as Zeek's atoi_n (None when there are none)."""
    m = (_HEX_NUMBER if base == 16 else _NUMBER).match(value)
    return int(m.group(1), base) if m else None


def is_ip(text: str) -> bool:
    if not text or not (text[0].isdigit() or ":" in text):  # an IP address starts so (v4) or has a colon (v6)
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_name(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class Decoder:
    """gzip/deflate decompression of one body, tolerant of a missing zlib header, bounded.

    ``deflate`` is meant to be zlib-wrapped, but servers send raw deflate too: until the first
    output, the input is kept so a failing zlib start can be retried as raw deflate.
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.obj = zlib.decompressobj(47 if encoding == "gzip" else 15)  # 47: gzip or zlib header
        self.failed = False
        self.head = b""  # input before the first output (at most 64 KiB)
        self.produced = False

    def feed(self, data: bytes, budget: int) -> bytes:
        if self.failed or not data or budget <= 0:
            return b""
        if not self.produced and len(self.head) < 65536:
            self.head += data
        try:
            out = self.obj.decompress(data, budget)
        except zlib.error:
            if self.produced or not self.head:
                self.failed = True
                return b""
            try:  # raw deflate (no zlib/gzip header)
                self.obj = zlib.decompressobj(-15)
                out = self.obj.decompress(self.head, budget)
            except zlib.error:
                self.failed = True
                return b""
        if out:
            self.produced = True
            self.head = b""
        return out


@cython.cclass
class Message:
    """One request or reply message being read: headers, then the body.

    Compiled, an extension type with C integer state and counters (the bytes seen, far below 2**63);
    the lengths a message announces stay Python integers (any size)."""

    is_orig = cython.declare(cython.bint, visibility="public")
    expect_body = cython.declare(object, visibility="public")
    ts = cython.declare(object, visibility="public")
    version = cython.declare(object, visibility="public")
    state = cython.declare(cython.int, visibility="public")
    headers = cython.declare(list, visibility="public")
    header_bytes = cython.declare(cython.longlong, visibility="public")
    content_length = cython.declare(object, visibility="public")
    range_length = cython.declare(object, visibility="public")
    range = cython.declare(object, visibility="public")
    chunked = cython.declare(cython.bint, visibility="public")
    encoding = cython.declare(str, visibility="public")
    remaining = cython.declare(object, visibility="public")  # a Content-Length or chunk size: any size
    body_len = cython.declare(cython.longlong, visibility="public")
    missing = cython.declare(cython.longlong, visibility="public")
    data = cython.declare(bytearray, visibility="public")
    decoder = cython.declare(object, visibility="public")
    content_type = cython.declare(str, visibility="public")
    disposition = cython.declare(str, visibility="public")
    linewise = cython.declare(cython.bint, visibility="public")

    def __init__(self, is_orig: bool, expect_body: bool | None, ts: float, version: tuple[int, int]) -> None:
        self.is_orig = is_orig
        self.expect_body = expect_body  # True expected, False not expected, None maybe (requests)
        self.ts = ts
        self.version = version
        self.state = HEADERS
        self.headers: list[tuple[str, bytes]] = []
        self.header_bytes = 0
        self.content_length: int | None = None
        self.range_length: int | None = None
        self.range: tuple[int, int | None] | None = None  # a 206 body's (first byte, total) from Content-Range
        self.chunked = False
        self.encoding = ""
        self.remaining = 0
        self.body_len = 0  # Zeek's body_length: decoded bytes
        self.missing = 0
        self.data = bytearray()  # the content-decoded body (capped)
        self.decoder: Decoder | None = None
        self.content_type = ""
        self.disposition = ""
        self.linewise = False  # Zeek reads this body line by line and counts 2 bytes per line end

    @cython.locals(i=cython.Py_ssize_t, headers=list)
    def header(self, name: str) -> bytes | None:
        headers = self.headers
        for i in range(len(headers) - 1, -1, -1):
            if headers[i][0] == name:
                return headers[i][1]
        return None

    @cython.locals(nbytes=cython.longlong)
    def skip(self, nbytes: int) -> None:
        """Body bytes lost in a content gap: counted in the body's length and as missing (files.log's
        ``missing_bytes``); a compressed body cannot be decoded past them."""
        self.body_len += nbytes
        self.missing += nbytes
        if self.decoder is not None:
            self.decoder.failed = True

    @cython.locals(chunk=bytes, room=cython.Py_ssize_t)
    def add_body(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.decoder is not None:
            out = self.decoder.feed(chunk, MAX_FILE_BYTES - len(self.data))
            self.body_len += len(out)
            self.data += out
        else:
            self.body_len += len(chunk)
            room = MAX_FILE_BYTES - len(self.data)
            if room > 0:
                self.data += chunk if len(chunk) <= room else chunk[:room]


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    Message = slotted(Message)


def linewise_len(body: bytes, boundary: str | None) -> int:
    """Zeek's body length for a body read as lines: each line plus 2, up to a closing boundary."""
    if not body:
        return 0
    # inside a multipart body only CRLF ends a line (Zeek's SetCRLFAsEOL(0) for the parts)
    lines = body.split(b"\r\n") if boundary else EOL.split(body)
    if body.endswith(b"\r\n" if boundary else (b"\n", b"\r")):
        lines.pop()
    total = 0
    close = b"--" + boundary.encode("latin-1", "replace") + b"--" if boundary else None
    for line in lines:
        total += len(line) + 2
        if close is not None and line.rstrip() == close:
            break
    return total


def content_range(value: bytes) -> tuple[int, int | None] | None:
    """``bytes FIRST-LAST/TOTAL`` (TOTAL may be ``*``) -> (FIRST, TOTAL or None)."""
    m = re.match(rb"\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)", value)
    if not m or int(m.group(2)) < int(m.group(1)):
        return None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != b"*" else None)
