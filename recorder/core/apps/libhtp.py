"""libhtp's readings of HTTP, as the rule engine's inspector (``apps.http_normalise``) needs them.

A port of libhtp-rs's header-block parser (rust/htp/src/headers.rs) as ``HeaderBlock`` (CR, LF,
LFCR and "deformed" line ends in responses, folding, names recovered from invalid folding); chunk
sizes, Content-Length and status numbers as libhtp reads them; Suricata's URI normalisation
(``normalize_uri``); and the body decoding of each Content-Encoding layer (gzip, deflate, zlib,
lzma; restarting on error, passing through when none fits). Also the size limits shared with
``apps.http``.
"""

from __future__ import annotations

import lzma
import re
import zlib

MAX_HEADER_BYTES = 64 * 1024  # a message whose header block is larger is given up
MAX_FILE_BYTES = 64 * 1024 * 1024  # decoded bytes kept per body (files log, file.data)
MAX_PENDING = 100  # Zeek's HTTP::max_pending_requests
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

MAX_DECODE_LAYERS = 3  # Suricata's response-body-decompress-layer-limit, as the HTTP Evader tests set it
_NOM_SPACE = b" \t"
IS_SPACE = b" \t\r\n\x0b\x0c"  # libhtp's is_space
CHUNK_CTL = b"\r\n \t\x0b\x0c"
_TOKEN_BYTES = frozenset(c for c in range(32, 127) if chr(c) not in '()<>@,;:\\"/[]?={} \t')
SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_PCT = re.compile(rb"%([0-9a-fA-F]{2})")
_F_NULL = 0x100  # HeaderFlags::NULL_TERMINATED
REQ_BUFFERS = {b"cookie": "http.cookie", b"user-agent": "http.user_agent", b"accept": "http.accept",
                b"accept-encoding": "http.accept_enc", b"accept-language": "http.accept_lang",
                b"connection": "http.connection", b"content-type": "http.content_type",
                b"content-length": "http.content_len", b"referer": "http.referer"}
RESP_BUFFERS = {b"set-cookie": "http.cookie", b"server": "http.server", b"location": "http.location",
                 b"content-type": "http.content_type", b"content-length": "http.content_len",
                 b"connection": "http.connection"}


class Incomplete(Exception):
    """More bytes are needed to decide (nom's Incomplete)."""


def trim(value: bytes | bytearray) -> bytes:
    return bytes(value).strip(IS_SPACE)


class HeaderBlock:
    """libhtp-rs's header parser (rust/htp/src/headers.rs) over one buffer, positions for slices:
    a method returns its end (and values), None when it does not match, or raises Incomplete."""

    def __init__(self, data: bytes, response: bool, complete: bool) -> None:
        self.d = data
        self.resp = response
        self.complete = complete

    def eol_regular(self, i: int) -> int | None:
        d = self.d
        for tag in ((b"\r\n", b"\n\r", b"\n", b"\r") if self.resp else (b"\r\n", b"\n")):
            if d.startswith(tag, i):
                return i + len(tag)
        return None

    def eol_deformed(self, i: int) -> int | None:
        d = self.d
        if d.startswith(b"\n\r\r\n", i) and (d.startswith(b"\n", i + 4) or d.startswith(b"\r\n", i + 4)):
            return i + 4
        if not self.resp:
            return i + 2 if d.startswith(b"\n\r", i) and d.startswith(b"\r\n", i + 2) else None
        if not d.startswith(b"\r\n\r", i):
            return None
        k = i + 3
        while k < len(d) and d[k] in b"\r \t":
            k += 1
        if k == len(d):
            raise Incomplete
        if k == i + 3:
            return None
        if d[k] == 0x0A:
            k += 1
        return None if d.startswith(b"\n", k) or d.startswith(b"\r\n", k) else k

    def complete_eol(self, i: int) -> int | None:
        e = self.eol_deformed(i)
        return e if e is not None else self.eol_regular(i)

    def folding_lws(self, i: int) -> bool:
        if i >= len(self.d):
            raise Incomplete
        return self.d[i] in b" \t\x00"

    def folding(self, i: int) -> tuple[int, int, bytes] | None:
        """(end, end of the line end, the folding byte)."""
        e = self.eol_regular(i) if self.resp else self.complete_eol(i)
        if e is None or not self.folding_lws(e):
            return None
        return e + 1, e, self.d[e:e + 1]

    def folding_or_terminator(self, i: int) -> tuple[int, int, int, bytes | None] | None:
        """(end, line-end length, flags, folding byte or None)."""
        try:
            f = self.folding(i)
        except Incomplete:
            if not self.complete:
                raise
            f = None
        if f is not None:
            return f[0], f[1] - i, 0, f[2]
        if self.d[i:i + 1] == b"\x00":
            return i + 1, 1, _F_NULL, None
        e = self.complete_eol(i)
        if e is None or (not self.complete and self.folding_lws(e)):
            return None
        return e, e - i, 0, None

    def value_bytes(self, i: int) -> tuple[int, bytes, int, int, bytes | None] | None:
        d = self.d
        j = d.find(b"\n", i)
        if self.resp:
            c = d.find(b"\r", i, j if j >= 0 else len(d))
            j = c if c >= 0 else j
        if j < 0:
            raise Incomplete
        value, rem = d[i:j], j
        if value.endswith(b"\r"):
            value, rem = value[:-1], j - 1
        t = self.folding_or_terminator(rem)
        return None if t is None else (t[0], value, t[1], t[2], t[3])

    def name_ahead(self, i: int) -> bool:
        """A header name and colon after a folding byte: the fold was a new header (responses)."""
        d, n = self.d, len(self.d)
        k = i
        while k < n and d[k] in _NOM_SPACE:
            k += 1
        start = k
        while k < n and d[k] in _TOKEN_BYTES:
            k += 1
        token = k > start
        while k < n and d[k] in _NOM_SPACE:
            k += 1
        if k == n:
            raise Incomplete
        if d[k] != 0x3A:
            return False
        k += 1
        while k < n and d[k] in _NOM_SPACE:
            k += 1
        if k == n:
            raise Incomplete
        return token

    def value(self, i: int) -> tuple[int, bytes, int] | None:
        r = self.value_bytes(i)
        if r is None:
            return None
        rest, vb, _, flags, fold = r
        value = bytearray(vb)
        if fold is None:
            return rest, trim(value), flags
        j, ofold, folds = rest, fold, 0
        while True:
            if self.resp and self.name_ahead(j):
                return j, trim(value), flags
            r = self.value_bytes(j)
            if r is None:
                return None
            rest2, vb, eol_len, more, fold = r
            j = rest2
            flags |= more
            if value:
                value += ofold
            if vb or eol_len > 1:
                rest = rest2
                value += vb
            elif eol_len == 1 and self.d[rest2:rest2 + 1] == b"\n":
                rest = rest2
            folds += 1
            if folds >= 128 or fold is None:
                return rest, trim(value), flags
            ofold = fold

    def name(self, i: int) -> tuple[int, bytes]:
        d = self.d
        term = 0
        offset = 0
        for k in range(i, len(d)):
            c = d[k]
            if term == 0:
                if c == 0x3A:
                    offset = k - i
                    break
                if c == 0x0A or (self.resp and c == 0x0D):
                    term = c
            elif c == 0x20:
                term = 0
            elif c == 0x0A and term == 0x0D:
                term = c
            else:
                offset = k - i - 1
                break
        return i + offset, trim(d[i:i + offset])

    def header(self, i: int) -> tuple[int, bytes, bytes, int] | None:
        try:
            end, name = self.name(i)
            if self.d[end:end + 1] == b":":
                k = end + 1
                while k < len(self.d) and self.d[k] in _NOM_SPACE:
                    k += 1
                if k == len(self.d):
                    raise Incomplete
                v = self.value(k)
                if v is not None:
                    return v[0], name, v[1], v[2]
        except Incomplete:
            pass
        if self.d.startswith(b"\r\n", i):
            return None
        v = self.value(i)
        return None if v is None else (v[0], b"", v[1], v[2])

    def headers(self) -> tuple[int, list[tuple[bytes, bytes]], bool]:
        """(end, headers, end of headers seen); (0, [], False) when nothing can be parsed yet."""
        out: list[tuple[bytes, bytes]] = []
        i = 0
        while True:
            try:
                r = self.header(i)
            except Incomplete:
                return i, out, False
            if r is None:
                if not out:
                    try:
                        e = self.complete_eol(i)
                    except Incomplete:
                        e = None
                    if e is not None:
                        return e, out, True
                return 0, [], False
            i = r[0]
            out.append((r[1], r[2]))
            if r[3] & _F_NULL:
                return i, out, True
            e = self.eol_regular(i)
            if e is not None:
                return e, out, True


def chunk_length(line: bytes) -> int | None:
    """libhtp-rs parse_chunked_length: a length, None (no length: go on), -1 invalid."""
    s = line.lstrip(CHUNK_CTL).lstrip(_NOM_SPACE)
    k = 0
    while k < len(s) and s[k] in HEX_DIGITS:
        k += 1
    digits, trailing = s[:k], s[k:].lstrip(_NOM_SPACE)
    if not digits:
        return None if not trailing else -1
    if k > 16:
        return -1
    value = int(digits, 16)
    return None if value > 0x7FFFFFFF else value


def content_length(value: bytes) -> int | None:
    """libhtp-rs parse_content_length: the first run of digits after any junk."""
    m = re.search(rb"[0-9]+", value)
    return int(m.group()) if m else None


def status_number(code: bytes) -> int | None:
    s = code.strip(_NOM_SPACE)
    return int(s) if s.isdigit() and 100 <= int(s) <= 999 else None


def is_body_line(line: bytes | bytearray) -> bool:
    """libhtp's treat_response_line_as_body: not (?i)^[\\s\\0]*http."""
    return bytes(line).lstrip(IS_SPACE + b"\x00")[:4].lower() != b"http"


def _normalize_path(path: bytes) -> bytes:
    """RFC 3986 remove_dot_segments, as libhtp normalizes a decoded path."""
    out: list[bytes] = []
    segments = path.split(b"/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == b"..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append(b"")
        elif seg == b".":
            if last:
                out.append(b"")
        else:
            out.append(seg)
    result = b"/".join(out)
    return b"/" + result if path.startswith(b"/") and not result.startswith(b"/") else result


PROTOCOL = re.compile(rb"HTTP/\d+\.\d+")


def normalize_uri(raw: bytes) -> bytes:
    """Suricata's http.uri: the path %-decoded (not %2F) with dot segments removed, the query kept as
    sent, the scheme and authority of an absolute URI dropped (Suricata's ``uri-include-all: no``)."""
    m = SCHEME.match(raw)
    uri = raw[m.end():] if m else raw
    cut = len(uri)
    for sep in (b"?", b"#"):
        at = uri.find(sep)
        if 0 <= at < cut:
            cut = at
    path, rest = uri[:cut], uri[cut:]
    if b"%" in path:
        path = _PCT.sub(lambda p: p.group(0) if p.group(1).lower() == b"2f" else bytes([int(p.group(1), 16)]), path)
    if b"." in path:
        path = _normalize_path(path)
    return path + rest


def host_of(raw: bytes) -> bytes:
    """Suricata's http.host: lowercased, without port and trailing dots."""
    h = raw.strip()
    if h.startswith(b"["):
        end = h.find(b"]")
        h = h[:end + 1] if end > 0 else h
    elif h.count(b":") == 1:
        h = h.split(b":", 1)[0]
    return h.rstrip(b".").lower()


def _inflate(data: bytes, start: int, wbits: int, budget: int) -> tuple[bytes, bool]:
    """Deflate data from ``start``: what decodes before any error, and whether there was none."""
    d = zlib.decompressobj(wbits)
    out = bytearray()
    pos = start
    while pos < len(data) and len(out) < budget and not d.eof:
        piece = data[pos:pos + 4096]
        saved = d.copy()
        try:
            out += d.decompress(piece)
        except zlib.error:  # keep what the piece gives up to the bad byte
            d = saved
            for k in range(len(piece)):
                try:
                    out += d.decompress(piece[k:k + 1])
                except zlib.error:
                    break
                if d.eof:
                    break
            return bytes(out[:budget]), False
        pos += 4096
    return bytes(out[:budget]), True


def _gzip_body(data: bytes) -> int | None:
    """Where the deflate data of a gzip member starts (flags honoured, reserved bits ignored);
    -1 when it is not gzip, None when the header is not complete."""
    if data[:3] != b"\x1f\x8b\x08"[:len(data[:3])]:
        return -1
    if len(data) < 10:
        return None
    flags, pos = data[3], 10
    if flags & 4:
        if len(data) < 12:
            return None
        pos = 12 + int.from_bytes(data[10:12], "little")
    for bit in (8, 16):
        if flags & bit:
            nul = data.find(b"\x00", pos)
            if nul < 0:
                return None
            pos = nul + 1
    if flags & 2:
        pos += 2
    return pos if pos <= len(data) else None


_RESTART = {"gzip": "deflate", "deflate": "zlib", "zlib": "gzip", "lzma": "deflate"}


def _decode_layer(data: bytes, encoding: str, budget: int) -> tuple[bytes, bool]:
    """One libhtp decompressor over a whole body: (output, passed through)."""
    restarts = 0
    while True:
        out, ok = b"", False
        if encoding == "gzip":
            start = _gzip_body(data)
            if start is None:
                out, ok = b"", True
            elif start >= 0:
                out, ok = _inflate(data, start, -15, budget)
        elif encoding in ("deflate", "zlib"):
            out, ok = _inflate(data, 0, -15 if encoding == "deflate" else 15, budget)
        elif encoding == "lzma":
            try:
                out, ok = lzma.LZMADecompressor(lzma.FORMAT_ALONE).decompress(data, budget), True
            except lzma.LZMAError:
                out, ok = b"", False
        if ok or (restarts == 0 and out):
            return out, False
        if restarts >= 3:
            return data, True
        encoding = _RESTART[encoding]
        restarts += 1


def content_encodings(value: bytes | None) -> list[str]:
    """The decompressors libhtp sets up for a Content-Encoding value, in the order it lists them."""
    if not value:
        return []
    plain = value.replace(b"\x00", b"").lower()
    fast = {b"gzip": "gzip", b"x-gzip": "gzip", b"deflate": "deflate", b"x-deflate": "deflate",
            b"lzma": "lzma", b"inflate": "", b"none": ""}
    if plain in fast:
        return [fast[plain]] if fast[plain] else []
    out: list[str] = []
    layers = 0
    for token in re.split(rb"[, ]", value):
        if not token:
            continue
        layers += 1
        if layers > MAX_DECODE_LAYERS:
            break
        low = token.lower()
        if b"gzip" in low:
            out.append("gzip")
        elif b"deflate" in low:
            out.append("deflate")
        elif token == b"lzma":
            out.append("lzma")
    return out


def decode_body(body: bytes, encodings: list[str]) -> bytes:
    for encoding in reversed(encodings):  # each layer is put in front of the ones before it
        body, passed = _decode_layer(body, encoding, MAX_FILE_BYTES)
        if passed:  # a passing-through layer makes the rest pass through too
            break
    return body
