"""Inspection buffers for the rule engine: HTTP read again as libhtp reads it.

Zeek and libhtp (Suricata's HTTP parser, rust/htp in Suricata 8) disagree on broken messages;
http.log keeps Zeek's reading (apps/http.py), while the rule engine must see what Suricata's rules see.
So when the output is inspecting, ``Inspector`` reads both directions again, on its own, the way
libhtp-rs does: its header-block parser is ported as ``_HeaderBlock`` (CR, LF, LFCR and "deformed"
line ends in responses, folding, names recovered from invalid folding); a response line not
starting with "http" is body; Transfer-Encoding containing "chunked" wins over Content-Length; a
bad chunk size turns the rest into an identity body; bytes after a complete body that do not
look like a response line still belong to it; each Content-Encoding token naming gzip or deflate
is a layer (at most ``MAX_DECODE_LAYERS``), each restarting as gzip, deflate or zlib on error and
passing the data through unchanged when none fits; gzip header flags and trailers are not checked.
"""

from __future__ import annotations

import lzma
import re
import zlib
from collections import deque

from recorder.core.apps.base import Conn

MAX_HEADER_BYTES = 64 * 1024  # a message whose header block is larger is given up
MAX_FILE_BYTES = 64 * 1024 * 1024  # decoded bytes kept per body (files log, file.data)
MAX_PENDING = 100  # Zeek's HTTP::max_pending_requests
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

MAX_DECODE_LAYERS = 3  # Suricata's response-body-decompress-layer-limit, as the HTTP Evader tests set it
_NOM_SPACE = b" \t"
_IS_SPACE = b" \t\r\n\x0b\x0c"  # libhtp's is_space
_CHUNK_CTL = b"\r\n \t\x0b\x0c"
_TOKEN_BYTES = frozenset(c for c in range(32, 127) if chr(c) not in '()<>@,;:\\"/[]?={} \t')
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
_PCT = re.compile(rb"%([0-9a-fA-F]{2})")
_F_NULL = 0x100  # HeaderFlags::NULL_TERMINATED
_REQ_BUFFERS = {b"cookie": "http.cookie", b"user-agent": "http.user_agent", b"accept": "http.accept",
                b"accept-encoding": "http.accept_enc", b"accept-language": "http.accept_lang",
                b"connection": "http.connection", b"content-type": "http.content_type",
                b"content-length": "http.content_len", b"referer": "http.referer"}
_RESP_BUFFERS = {b"set-cookie": "http.cookie", b"server": "http.server", b"location": "http.location",
                 b"content-type": "http.content_type", b"content-length": "http.content_len",
                 b"connection": "http.connection"}


class _Incomplete(Exception):
    """More bytes are needed to decide (nom's Incomplete)."""


def _trim(value: bytes | bytearray) -> bytes:
    return bytes(value).strip(_IS_SPACE)


class _HeaderBlock:
    """libhtp-rs's header parser (rust/htp/src/headers.rs) over one buffer, positions for slices:
    a method returns its end (and values), None when it does not match, or raises _Incomplete."""

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
            raise _Incomplete
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
            raise _Incomplete
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
        except _Incomplete:
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
            raise _Incomplete
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
            raise _Incomplete
        if d[k] != 0x3A:
            return False
        k += 1
        while k < n and d[k] in _NOM_SPACE:
            k += 1
        if k == n:
            raise _Incomplete
        return token

    def value(self, i: int) -> tuple[int, bytes, int] | None:
        r = self.value_bytes(i)
        if r is None:
            return None
        rest, vb, _, flags, fold = r
        value = bytearray(vb)
        if fold is None:
            return rest, _trim(value), flags
        j, ofold, folds = rest, fold, 0
        while True:
            if self.resp and self.name_ahead(j):
                return j, _trim(value), flags
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
                return rest, _trim(value), flags
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
        return i + offset, _trim(d[i:i + offset])

    def header(self, i: int) -> tuple[int, bytes, bytes, int] | None:
        try:
            end, name = self.name(i)
            if self.d[end:end + 1] == b":":
                k = end + 1
                while k < len(self.d) and self.d[k] in _NOM_SPACE:
                    k += 1
                if k == len(self.d):
                    raise _Incomplete
                v = self.value(k)
                if v is not None:
                    return v[0], name, v[1], v[2]
        except _Incomplete:
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
            except _Incomplete:
                return i, out, False
            if r is None:
                if not out:
                    try:
                        e = self.complete_eol(i)
                    except _Incomplete:
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


def _chunk_length(line: bytes) -> int | None:
    """libhtp-rs parse_chunked_length: a length, None (no length: go on), -1 invalid."""
    s = line.lstrip(_CHUNK_CTL).lstrip(_NOM_SPACE)
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


def _content_length(value: bytes) -> int | None:
    """libhtp-rs parse_content_length: the first run of digits after any junk."""
    m = re.search(rb"[0-9]+", value)
    return int(m.group()) if m else None


def _status_number(code: bytes) -> int | None:
    s = code.strip(_NOM_SPACE)
    return int(s) if s.isdigit() and 100 <= int(s) <= 999 else None


def _is_body_line(line: bytes | bytearray) -> bool:
    """libhtp's treat_response_line_as_body: not (?i)^[\\s\\0]*http."""
    return bytes(line).lstrip(_IS_SPACE + b"\x00")[:4].lower() != b"http"


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


_PROTOCOL = re.compile(rb"HTTP/\d+\.\d+")


def normalize_uri(raw: bytes) -> bytes:
    """Suricata's http.uri: the path %-decoded (not %2F) with dot segments removed, the query kept as
    sent, the scheme and authority of an absolute URI dropped (Suricata's ``uri-include-all: no``)."""
    m = _SCHEME.match(raw)
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


def _host(raw: bytes) -> bytes:
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


def _encodings(value: bytes | None) -> list[str]:
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


def _decode_body(body: bytes, encodings: list[str]) -> bytes:
    for encoding in reversed(encodings):  # each layer is put in front of the ones before it
        body, passed = _decode_layer(body, encoding, MAX_FILE_BYTES)
        if passed:  # a passing-through layer makes the rest pass through too
            break
    return body


class _IMsg:
    """One message as the inspector reads it."""

    __slots__ = ("is_orig", "ts", "line", "parts", "raw", "headers", "body", "tx", "method", "trailer")

    def __init__(self, is_orig: bool, ts: float, tx: int) -> None:
        self.is_orig = is_orig
        self.ts = ts
        self.line: bytes | None = None  # the request or status line (None: a response read as bare body)
        self.parts: tuple[bytes, bytes, bytes] = (b"", b"", b"")  # (method, uri, protocol) or (protocol, code, message)
        self.raw = bytearray()  # the header block as received
        self.headers: list[list[bytes]] = []  # [name, value], repeats merged into the first as libhtp does
        self.body = bytearray()
        self.tx = tx
        self.method = b""  # a response's request method
        self.trailer = False

    def add_header(self, name: bytes, value: bytes) -> None:
        low = name.lower()
        for h in self.headers:
            if h[0].lower() == low:
                if low != b"content-length":  # libhtp keeps the first Content-Length
                    h[1] += b", " + value
                return
        self.headers.append([name, value])

    def get(self, key: bytes) -> bytes | None:
        """A header by libhtp's get_nocase_nozero."""
        for name, value in self.headers:
            if name.replace(b"\x00", b"").lower() == key:
                return value
        return None

    def add_body(self, data: bytes | bytearray) -> None:
        room = MAX_FILE_BYTES - len(self.body)
        if room > 0:
            self.body += data[:room]


class Inspector:
    """Both directions of one connection read as libhtp-rs reads them; each message ends in ``inspect``."""

    def __init__(self, conn: Conn, inspect) -> None:
        self.conn = conn
        self.inspect = inspect
        self.buf = {True: bytearray(), False: bytearray()}
        self.state = {True: "line", False: "line"}
        self.msg: dict[bool, _IMsg | None] = {True: None, False: None}
        self.remaining = {True: 0, False: 0}
        self.ntx = {True: 0, False: 0}
        self.requests: deque[tuple[bytes, bool]] = deque(maxlen=4 * MAX_PENDING)  # (method, HTTP/0.9)
        self.eof = False

    # -- driving --

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.state[is_orig] == "dead":
            return
        buf = self.buf[is_orig]
        buf += data
        pos = self._run(is_orig, ts)
        del buf[:pos]
        if len(buf) > MAX_HEADER_BYTES:  # only a line or header block is ever held back
            self._give_up(is_orig)

    def gap(self, is_orig: bool) -> None:
        self._give_up(is_orig)

    def end(self, ts: float) -> None:
        self.eof = True
        for is_orig in (True, False):
            if self.state[is_orig] != "dead":
                self._run(is_orig, ts)
            self._give_up(is_orig)

    def _give_up(self, is_orig: bool) -> None:
        msg = self.msg[is_orig]
        if msg is not None:
            self._emit(msg)
        self.state[is_orig] = "dead"
        self.buf[is_orig].clear()

    def _run(self, is_orig: bool, ts: float) -> int:
        buf = self.buf[is_orig]
        pos = 0
        while True:
            state = self.state[is_orig]
            if state == "dead":
                return len(buf)
            msg = self.msg[is_orig]
            step = (self._request_step if is_orig else self._response_step)(state, buf, pos, ts)
            if step is None:
                return pos
            if step == pos and self.state[is_orig] == state and self.msg[is_orig] is msg:
                return pos  # no progress (never expected): wait for more bytes rather than spin
            pos = step

    def _new(self, is_orig: bool, ts: float) -> _IMsg:
        msg = self.msg[is_orig] = _IMsg(is_orig, ts, self.ntx[is_orig])
        self.ntx[is_orig] += 1
        return msg

    # -- the parts both directions share --

    def _headers(self, is_orig: bool, msg: _IMsg, buf: bytearray, pos: int) -> int | None:
        data = bytes(buf[pos:])
        end, headers, eoh = _HeaderBlock(data, not is_orig, self.eof).headers()
        for name, value in headers:
            msg.add_header(name, value)
        if not eoh and end == 0 and data in (b"\r\n", b"\n"):
            eoh, end = True, len(data)
        if not msg.trailer:
            msg.raw += data[:end]
        if eoh:
            if msg.trailer:
                self._complete(is_orig, msg)
            else:
                self._body_start(is_orig, msg)
            return pos + end
        if self.eof:
            self._complete(is_orig, msg)
            return len(buf)
        return None if end == 0 else pos + end

    def _chunk_len(self, is_orig: bool, msg: _IMsg, buf: bytearray, pos: int) -> int | None:
        lf = buf.find(b"\n", pos)
        if lf < 0:
            rest = bytes(buf[pos:]).lstrip(_CHUNK_CTL)
            if rest and rest[0] not in HEX_DIGITS:  # junk before any length: the rest is an identity body
                self.state[is_orig] = "close"
                return pos
            if self.eof:
                self._complete(is_orig, msg)
                return len(buf)
            return None
        line = bytes(buf[pos:lf + 1])
        if not line.strip(_CHUNK_CTL):
            return lf + 1
        size = _chunk_length(line)
        if size is None:
            return lf + 1
        if size < 0:
            self.state[is_orig] = "close"  # the line itself is body too
            return pos
        if size == 0:
            msg.trailer = True
            self.state[is_orig] = "headers"
        else:
            self.state[is_orig] = "chunk_data"
            self.remaining[is_orig] = size
        return lf + 1

    def _body_bytes(self, is_orig: bool, msg: _IMsg, buf: bytearray, pos: int, state: str) -> int | None:
        """chunk_data, chunk_end, cl and close: body bytes and the ends of chunks."""
        n = len(buf)
        if pos >= n:
            if self.eof:
                self._complete(is_orig, msg)
            return None
        if state == "close":
            msg.add_body(buf[pos:])
            return n
        if state == "chunk_end":
            lf = buf.find(b"\n", pos)
            if lf < 0:
                return n
            self.state[is_orig] = "chunk_len"
            return lf + 1
        take = min(self.remaining[is_orig], n - pos)
        msg.add_body(buf[pos:pos + take])
        self.remaining[is_orig] -= take
        if self.remaining[is_orig] <= 0:
            if state == "cl":
                self._complete(is_orig, msg)
            else:
                self.state[is_orig] = "chunk_end"
        return pos + take

    def _complete(self, is_orig: bool, msg: _IMsg) -> None:
        """The message's body is over; a response waits (finalize) for trailing non-HTTP lines."""
        if is_orig or self.eof:
            self._emit(msg)
            if self.state[is_orig] != "dead":
                self.state[is_orig] = "line"
        else:
            self.state[False] = "finalize"

    # -- requests --

    def _request_step(self, state: str, buf: bytearray, pos: int, ts: float) -> int | None:
        msg = self.msg[True]
        if state == "line":
            lf = buf.find(b"\n", pos)
            if lf < 0:
                if not self.eof or pos >= len(buf):
                    return None
                lf = len(buf) - 1
            line = bytes(buf[pos:lf + 1])
            text = line.rstrip(b"\r\n")
            if not text.strip(_IS_SPACE):
                return lf + 1
            parts = text.strip(_IS_SPACE).split(None, 2)
            method, uri = parts[0], parts[1] if len(parts) > 1 else b""
            proto = parts[2].strip(_IS_SPACE) if len(parts) > 2 else b""
            if b" " in proto:  # a URI with spaces: up to the protocol at the end of the line (libhtp-rs)
                head, _, last = proto.rpartition(b" ")
                if _PROTOCOL.fullmatch(last):
                    uri, proto = uri + b" " + head.strip(_IS_SPACE), last
            msg = self._new(True, ts)
            msg.line, msg.parts = text, (method, uri, proto)
            self.requests.append((method, not proto))
            if proto:
                self.state[True] = "headers"
            else:
                self._complete(True, msg)
            return lf + 1
        if msg is None:
            self.state[True] = "line"
            return pos
        if state == "headers":
            return self._headers(True, msg, buf, pos)
        if state == "chunk_len":
            return self._chunk_len(True, msg, buf, pos)
        return self._body_bytes(True, msg, buf, pos, state)

    # -- responses --

    def _response_step(self, state: str, buf: bytearray, pos: int, ts: float) -> int | None:
        msg = self.msg[False]
        if state == "line":
            return self._response_line(buf, pos, ts)
        if msg is None:
            self.state[False] = "line"
            return pos
        if state == "headers":
            return self._headers(False, msg, buf, pos)
        if state == "chunk_len":
            return self._chunk_len(False, msg, buf, pos)
        if state == "finalize":
            return self._finalize(msg, buf, pos)
        return self._body_bytes(False, msg, buf, pos, state)

    def _response_line(self, buf: bytearray, pos: int, ts: float) -> int | None:
        n = len(buf)
        if pos >= n:
            return None
        lf, cr = buf.find(b"\n", pos), buf.find(b"\r", pos)
        ends = [e for e in (lf, cr) if e >= 0]
        if not ends:
            if not self.eof:
                return None
            end = n
        else:
            e = min(ends)
            if buf[e] == 0x0D and e + 1 == n and not self.eof:
                return None  # a CR that a LF may follow
            end = e + 2 if buf[e] == 0x0D and buf[e + 1:e + 2] == b"\n" else e + 1
        line = bytes(buf[pos:end])
        if line in (b"\r", b"\n", b"\r\n"):
            return end
        msg = self.msg[False]
        if msg is None:
            method, http09 = self.requests.popleft() if self.requests else (b"", False)
            msg = self._new(False, ts)
            msg.method = method
            if http09:  # the answer to an HTTP/0.9 request is all body
                msg.add_body(buf[pos:])
                self.state[False] = "close"
                return n
        if _is_body_line(line):
            rest = buf[end:]
            if len(rest) > 1 and (rest[:1] == b"H" or len(line.rstrip(b"\r\n")) <= 2):
                return end
            msg.add_body(line)
            if not rest:
                self.state[False] = "finalize"
            return end
        text = line.rstrip(b"\r\n")
        m = re.match(rb"[\s\x00]*(\S*)(\s*)(\S*)(\s*)", text)
        assert m is not None
        proto, code = m.group(1), m.group(3) if m.group(2) else b""
        reason = text[m.end():] if code and m.group(4) else b""
        msg.line, msg.parts = text, (proto, code, reason)
        msg.raw.clear()
        self.state[False] = "headers"
        return end

    def _body_start(self, is_orig: bool, msg: _IMsg) -> None:
        te, cl = msg.get(b"transfer-encoding"), msg.get(b"content-length")
        if not is_orig:
            code = _status_number(msg.parts[1])
            method = msg.method.upper()
            if method == b"CONNECT" and code is not None and 200 <= code < 300:
                self._emit(msg)
                self.state[False] = self.state[True] = "dead"  # a tunnel
                return
            if code == 101 and te is None and cl is None:
                self._emit(msg)
                self.state[False] = self.state[True] = "dead"
                return
            if code == 100 and te is None and not (_content_length(cl or b"") or 0) > 0:
                msg.headers.clear()  # interim: the final response follows in the same transaction
                self.state[False] = "line"
                return
            if method == b"HEAD" or (code is not None and (100 <= code < 200 or code in (204, 304))
                                     and te is None and cl is None):
                self._emit(msg)
                self.state[False] = "line"
                return
        if te is not None and b"chunked" in te.replace(b"\x00", b"").lower():
            self.state[is_orig] = "chunk_len"
        elif cl is not None:
            length = _content_length(cl)
            if length is None:  # libhtp stops parsing the direction
                self._give_up(is_orig)
            elif length > 0:
                self.state[is_orig] = "cl"
                self.remaining[is_orig] = length
            else:
                self._complete(is_orig, msg)
        elif is_orig:
            self._complete(True, msg)
        elif b"multipart/byteranges" in (msg.get(b"content-type") or b"").lower():
            self._give_up(False)
        else:
            self.state[False] = "close"

    def _finalize(self, msg: _IMsg, buf: bytearray, pos: int) -> int | None:
        """After a response body: lines that are not a response line are still its body."""
        n = len(buf)
        if pos >= n:  # nothing follows the body (yet): libhtp completes the response now
            self._done_response(msg)
            return None
        if buf[pos] == 0x0A:
            end = n
        else:
            lf = buf.find(b"\n", pos)
            if lf < 0:
                if not self.eof:
                    return None
                lf = n - 1
            end = lf + 1
        work = buf[pos:end]
        if _is_body_line(work):
            if _encodings(msg.get(b"content-encoding")):  # its decompressor is gone: libhtp errs
                self._give_up(False)
                return n
            msg.add_body(work)
            return end
        self._done_response(msg)
        return pos

    def _done_response(self, msg: _IMsg) -> None:
        self._emit(msg)
        if self.state[False] != "dead":
            self.state[False] = "line"

    # -- the buffers --

    def _emit(self, msg: _IMsg) -> None:
        is_orig = msg.is_orig
        if self.msg[is_orig] is msg:
            self.msg[is_orig] = None
        b: dict[str, bytes] = {}
        if msg.line is not None:
            if is_orig:
                method, uri, proto = msg.parts
                b["http.method"] = method
                if uri:
                    b["http.uri.raw"] = uri
                    b["http.uri"] = normalize_uri(uri)
                b["http.request_line"] = msg.line
            else:
                proto, code, reason = msg.parts
                if code:
                    b["http.stat_code"] = code
                if reason:
                    b["http.stat_msg"] = reason
                b["http.response_line"] = msg.line
            if proto:
                b["http.protocol"] = proto
            normalized = [n + b": " + v + b"\r\n" for n, v in msg.headers]
            if msg.headers:
                skip = b"cookie" if is_orig else b"set-cookie"
                b["http.header"] = b"".join(h for h, (n, _) in zip(normalized, msg.headers) if n.lower() != skip)
                b["http.header_names"] = b"\r\n" + b"".join(n + b"\r\n" for n, _ in msg.headers) + b"\r\n"
            if msg.raw:
                b["http.header.raw"] = bytes(msg.raw)
            b["http.start"] = msg.line + b"\r\n" + b"".join(normalized) + b"\r\n"
            for key, name in (_REQ_BUFFERS if is_orig else _RESP_BUFFERS).items():
                value = msg.get(key)
                if value is not None:
                    b[name] = value
            if is_orig:
                m = _SCHEME.match(msg.parts[1])
                raw_host = m.group(1).rpartition(b"@")[2] if m and m.group(1) else msg.get(b"host")
                if raw_host is not None:
                    b["http.host.raw"] = raw_host
                    b["http.host"] = _host(raw_host)
        if msg.body:
            body = bytes(msg.body)
            if msg.line is not None:  # request bodies too, as Suricata decompresses them since 7.0.16
                body = _decode_body(body, _encodings(msg.get(b"content-encoding")))
            b["http.request_body" if is_orig else "http.response_body"] = body
            b["file.data"] = body
        self.inspect(self.conn, is_orig, msg.ts, msg.tx, b)
