"""Inspection buffers for the rule engine: HTTP read again as libhtp reads it.

Zeek and libhtp (Suricata's HTTP parser, rust/htp in Suricata 8) disagree on broken messages;
http.log keeps Zeek's reading (apps/http.py), while the rule engine must see what Suricata's rules see.
So when the output is inspecting, ``Inspector`` reads both directions again, on its own, the way
libhtp-rs does: its header-block parser is ported as ``libhtp.HeaderBlock`` (CR, LF, LFCR and "deformed"
line ends in responses, folding, names recovered from invalid folding); a response line not
starting with "http" is body; Transfer-Encoding containing "chunked" wins over Content-Length; a
bad chunk size turns the rest into an identity body; bytes after a complete body that do not
look like a response line still belong to it; each Content-Encoding token naming gzip or deflate
is a layer (at most ``MAX_DECODE_LAYERS``), each restarting as gzip, deflate or zlib on error and
passing the data through unchanged when none fits; gzip header flags and trailers are not checked.
"""

from __future__ import annotations

import re
from collections import deque

from recorder.core.apps.base import Conn
from recorder.core.apps.libhtp import (  # noqa: F401 (limits re-exported for apps.http)
    CHUNK_CTL,
    HEX_DIGITS,
    IS_SPACE,
    MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    MAX_PENDING,
    PROTOCOL,
    REQ_BUFFERS,
    RESP_BUFFERS,
    SCHEME,
    HeaderBlock,
    chunk_length,
    content_encodings,
    content_length,
    decode_body,
    host_of,
    is_body_line,
    normalize_uri,
    status_number,
)


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
        end, headers, eoh = HeaderBlock(data, not is_orig, self.eof).headers()
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
            rest = bytes(buf[pos:]).lstrip(CHUNK_CTL)
            if rest and rest[0] not in HEX_DIGITS:  # junk before any length: the rest is an identity body
                self.state[is_orig] = "close"
                return pos
            if self.eof:
                self._complete(is_orig, msg)
                return len(buf)
            return None
        line = bytes(buf[pos:lf + 1])
        if not line.strip(CHUNK_CTL):
            return lf + 1
        size = chunk_length(line)
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
            if not text.strip(IS_SPACE):
                return lf + 1
            parts = text.strip(IS_SPACE).split(None, 2)
            method, uri = parts[0], parts[1] if len(parts) > 1 else b""
            proto = parts[2].strip(IS_SPACE) if len(parts) > 2 else b""
            if b" " in proto:  # a URI with spaces: up to the protocol at the end of the line (libhtp-rs)
                head, _, last = proto.rpartition(b" ")
                if PROTOCOL.fullmatch(last):
                    uri, proto = uri + b" " + head.strip(IS_SPACE), last
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
        if is_body_line(line):
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
            code = status_number(msg.parts[1])
            method = msg.method.upper()
            if method == b"CONNECT" and code is not None and 200 <= code < 300:
                self._emit(msg)
                self.state[False] = self.state[True] = "dead"  # a tunnel
                return
            if code == 101 and te is None and cl is None:
                self._emit(msg)
                self.state[False] = self.state[True] = "dead"
                return
            if code == 100 and te is None and not (content_length(cl or b"") or 0) > 0:
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
            length = content_length(cl)
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
        if is_body_line(work):
            if content_encodings(msg.get(b"content-encoding")):  # its decompressor is gone: libhtp errs
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
            for key, name in (REQ_BUFFERS if is_orig else RESP_BUFFERS).items():
                value = msg.get(key)
                if value is not None:
                    b[name] = value
            if is_orig:
                m = SCHEME.match(msg.parts[1])
                raw_host = m.group(1).rpartition(b"@")[2] if m and m.group(1) else msg.get(b"host")
                if raw_host is not None:
                    b["http.host.raw"] = raw_host
                    b["http.host"] = host_of(raw_host)
        if msg.body:
            body = bytes(msg.body)
            if msg.line is not None:  # request bodies too, as Suricata decompresses them since 7.0.16
                body = decode_body(body, content_encodings(msg.get(b"content-encoding")))
            b["http.request_body" if is_orig else "http.response_body"] = body
            b["file.data"] = body
        self.inspect(self.conn, is_orig, msg.ts, msg.tx, b)
