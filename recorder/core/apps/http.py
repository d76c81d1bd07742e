"""HTTP/0.9-1.1 over TCP: Zeek's http.log, the bodies as files, logins as credentials.

The parser follows Zeek's analyzer (``src/analyzer/protocol/http/HTTP.cc``) and its script
(``base/protocols/http/main.zeek``) closely, because the log's meaning lives in their details:

* Each direction is split into lines (CRLF, LF or CR end a line) until a body is read plainly.
  A request line is ``METHOD SP URI [SP HTTP/x.y]``; without a version it is HTTP/0.9, and the
  server's answer is then raw data until the connection ends (status 0, ``<empty>``). A line
  that is not a request (reply) line stops parsing of that direction.
* Records are matched in order (pipelining): a request opens the next record, a reply answers
  the oldest unanswered one; a 1xx reply sets ``info_code``/``info_msg`` and the final reply
  reuses the record. A reply without a request still makes a record (method unset).
* ``version`` is the reply's version (Zeek sets it only from the status line).
* Body lengths are what Zeek counts: bytes after de-chunking and after gzip/deflate
  decompression. No body for HEAD replies, 1xx, 204, 304; a Content-Range on a 206 reply
  delimits its body; chunked only on HTTP/1.1; a reply without a length is read until the
  connection ends when it says ``Connection: close`` or is compressed. Decompression stops at
  ``MAX_FILE_BYTES`` per body (a bomb's length is then reported as that cap).
* A record is logged when its reply message completes (not for 1xx), or at ``end()``.
* ``trans_depth`` counts the records made on the connection (as Zeek's ``http_state``), so a
  request message finishing after its reply was logged makes a near-empty record, as in Zeek.

Files: every request/response body (each part of a multipart body) goes to ``Output.file`` with
the decoded bytes (capped at ``MAX_FILE_BYTES``); the fuids land in ``orig_fuids``/``resp_fuids``.
A 206 reply's body, or each part of a multipart/byteranges one, is a piece (``piece=``) of the
file its URL names, at the offset its Content-Range gives.
Credentials: Basic and Digest Authorization headers, and login forms (urlencoded or
multipart) with a user and a password field. The Host header names the responder. NTLM
(``Authorization: NTLM|Negotiate``, ``WWW-Authenticate``) goes to ntlm.log through ``apps.ntlm``,
its account to credentials as an account seen (success from the reply's status).

Rule engine: when the output is inspecting, every request and response also goes to
``Output.inspect`` with Suricata's sticky buffers (``http.uri``, ``http.header``, ``file.data``...),
read apart from the log by ``apps.http_normalise.Inspector`` the way libhtp reads them;
otherwise that reader does not exist and costs nothing.
"""

from __future__ import annotations

import re
from collections import deque

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import MAX_BUFFER, Conn, Output, Parser
from recorder.core.apps.http_message import (  # noqa: F401 (unescape_uri, zeek_str: re-exported)
    BODY_CLOSE,
    BODY_LENGTH,
    CHUNK_CRLF,
    CHUNK_DATA,
    CHUNK_SIZE,
    EOL,
    HEADERS,
    TRAILER,
    Decoder,
    Message,
    atoi,
    content_range,
    parse_request_line,
    parse_status_line,
    unescape_uri,
    zeek_str,
)
from recorder.core.apps.http_normalise import Inspector
from recorder.core.apps.http_records import FIELDS, HTTPRecords
from recorder.core.apps.libhtp import (  # noqa: F401 (MAX_FILE_BYTES, normalize_uri: re-exported)
    MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    MAX_PENDING,
    normalize_uri,
)
from recorder.core.apps.ntlm import NTLM_LOG, NTLMLogins
from recorder.core.purecython import slotted

_REQUEST_RE = re.compile(rb"^[\r\n]*[!#$%&'*+.^_`|~0-9A-Za-z-]{2,20} +[^ \r\n]+ +HTTP/\d\.\d")
_REQUEST09_RE = re.compile(rb"^(GET|HEAD|POST) +/[^ \r\n]*\r?\n")
_REPLY_RE = re.compile(rb"^HTTP/\d\.\d +\d{3}")
# After a gap: the next request line (a common method anywhere, as a body may not end with a line
# end; any other method at a line's start) or status line.
_RESYNC_REQUEST = re.compile(rb"(?:(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|TRACE|CONNECT|PATCH|PROPFIND|PROPPATCH|MKCOL|"
                             rb"COPY|MOVE|LOCK|UNLOCK|SEARCH|REPORT)|(?<![^\r\n])[!#$%&'*+.^_`|~0-9A-Za-z-]{2,20})"
                             rb" +[^ \r\n]+ +HTTP/\d\.\d[ \t]*(?=[\r\n])")
_RESYNC_REPLY = re.compile(rb"HTTP/\d\.\d +\d{3}")
MAX_RESYNC_TAIL = 8192  # bytes kept while looking for a line after a gap

# What a direction reads next: a request (status) line, the message's lines or body, nothing more
# (given up, upgraded), the next request (status) line after a gap, HTTP/0.9's reply (raw bytes).
LINE = cython.declare(cython.int, 0)
IN_MESSAGE = cython.declare(cython.int, 1)
NOTHING = cython.declare(cython.int, 2)
RESYNC = cython.declare(cython.int, 3)
HTTP09 = cython.declare(cython.int, 4)


@cython.cclass
class _Dir:
    """One direction's reading state (Zeek's HTTP_Message and ContentLine per endpoint)."""

    buf = cython.declare(bytearray, visibility="public")  # bytes kept until a line (or a body) completes
    msg = cython.declare(object, visibility="public")  # the Message being read, or None
    state = cython.declare(cython.int, visibility="public")  # LINE, IN_MESSAGE, NOTHING, RESYNC, HTTP09

    def __init__(self) -> None:
        self.buf = bytearray()
        self.msg = None
        self.state = LINE


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    _Dir = slotted(_Dir)


@cython.cfunc
@cython.returns(cython.Py_ssize_t)
@cython.exceptval(-2, check=True)
@cython.locals(data=bytes, pos=cython.Py_ssize_t, i=cython.Py_ssize_t, n=cython.Py_ssize_t, c=cython.int)
def _line_start(data: bytes, pos: int) -> int:
    """Where the first line end (CR or LF, ``EOL``'s start) at or after ``pos`` is; -1 when none."""
    n = len(data)
    i = pos
    while i < n:
        c = data[i]
        if c == 0x0A or c == 0x0D:
            return i
        i += 1
    return -1


class HTTP(HTTPRecords, Parser):
    """HTTP parser: writes http.log, files for bodies, credentials and host names."""

    service = "http"
    transport = "tcp"
    logs = {"http": FIELDS, "ntlm": NTLM_LOG}
    ports = frozenset({80, 81, 631, 1080, 3128, 8000, 8080, 8888})

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        try:
            if is_orig:
                return bool(_REQUEST_RE.match(data) or _REQUEST09_RE.match(data))
            return bool(_REPLY_RE.match(data))
        except Exception:  # noqa: BLE001 - detection never raises
            return False

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.req = _Dir()  # the requests' direction: LINE, IN_MESSAGE, NOTHING or RESYNC
        self.rep = _Dir()  # the replies': also HTTP09
        self.req_version = (0, 0)
        self.rep_version = (0, 0)
        self.unanswered: deque[str] = deque(maxlen=4 * MAX_PENDING)  # methods of requests not yet answered
        self.reply_code = 0
        self.connection_close = False
        self.upgrade = False
        self.upgrade_proto = ""
        self.connect = False
        self.done = False
        self.last_ts = conn.start
        # script-level state (main.zeek): pending records by request/response index
        self.pending: dict[int, dict] = {}
        self.extra: dict[int, dict] = {}  # per record: credentials and form bodies seen
        self.cur_req = 0
        self.cur_resp = 0
        self.depth = 0
        self.cur_key = 0
        self.named: set[str] = set()
        self.ntlm = NTLMLogins(conn, out, credentials=True)  # NTLM in Authorization headers: ntlm.log, accounts seen
        self.errors = 0  # internal errors swallowed (the parser then stops): 0 unless there is a bug
        # the rule engine's buffers, read apart from the log (see Inspector); None costs nothing
        self._inspect = out.inspect if getattr(out, "inspecting", False) else None
        self._insp = Inspector(conn, self._inspect) if self._inspect is not None else None

    # ---- the Parser interface ----

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self._insp is not None and data:
            try:
                self._insp.data(is_orig, bytes(data), ts)
            except Exception:  # noqa: BLE001 - a parser never raises; stop inspecting
                self.errors += 1
                self._insp = None
        if self.done or not data:
            return
        self.last_ts = ts
        try:
            self._deliver(is_orig, bytes(data), ts)
        except Exception:  # noqa: BLE001 - a parser never raises; give up on the connection
            self.errors += 1
            self.done = True

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        if self._insp is not None and nbytes > 0:
            try:
                self._insp.gap(is_orig)
            except Exception:  # noqa: BLE001
                self.errors += 1
                self._insp = None
        if self.done or nbytes <= 0:
            return
        try:
            self._gap(is_orig, nbytes, ts)
        except Exception:  # noqa: BLE001
            self.errors += 1
            self.done = True

    def end(self, ts: float) -> None:
        try:
            self._end(ts)
        except Exception:  # noqa: BLE001
            self.errors += 1
        self.done = True
        if self._insp is not None:
            insp, self._insp = self._insp, None  # once: a hand-over (redetect) ends the parser too
            try:
                insp.end(ts)
            except Exception:  # noqa: BLE001
                self.errors += 1

    # ---- the analyzer (HTTP.cc) ----

    @cython.locals(d=_Dir, buf=bytearray, data=bytes, pos=cython.Py_ssize_t, n=cython.Py_ssize_t,
                   take=cython.Py_ssize_t, start=cython.Py_ssize_t, end=cython.Py_ssize_t, line=bytes,
                   dstate=cython.int)
    def _deliver(self, is_orig: bool, data: bytes, ts: float) -> None:
        d = self.req if is_orig else self.rep
        buf = d.buf
        if buf:
            data = bytes(buf) + data
            buf.clear()
        pos, n = 0, len(data)
        while pos < n and not self.done:
            msg = d.msg
            dstate = d.state
            if dstate == HTTP09:
                self._http09(data[pos:], ts)
                return
            if dstate == RESYNC:
                m = (_RESYNC_REQUEST if is_orig else _RESYNC_REPLY).search(data, pos)
                if m is None:  # keep the tail: a request or status line may be cut across segments
                    buf += data[max(pos, n - MAX_RESYNC_TAIL):]
                    return
                pos = m.start()  # read from that line on as usual
                d.state = LINE
                continue
            if msg is not None:
                state = msg.state
                if state == BODY_LENGTH or state == CHUNK_DATA:
                    take = min(msg.remaining, n - pos)
                    msg.add_body(data[pos:pos + take])
                    pos += take
                    msg.remaining -= take
                    if msg.remaining <= 0:
                        if state == CHUNK_DATA:
                            msg.state = CHUNK_CRLF
                        else:
                            self._message_done(is_orig, ts)
                    continue
                if state == BODY_CLOSE:
                    msg.add_body(data[pos:])
                    return
            if dstate == NOTHING:
                return
            if cython.compiled:  # a C loop over the bytes; as Python, the regular expression
                start = _line_start(data, pos)
                end = start + 2 if 0 <= start < n - 1 and data[start] == 0x0D and data[start + 1] == 0x0A else start + 1
            else:
                m = EOL.search(data, pos)
                start, end = (-1, 0) if m is None else m.span()
            if start < 0 or (end == n and end - start == 1 and data[start] == 0x0D):
                # incomplete, or a CR at the end that a LF may follow
                if n - pos > min(MAX_HEADER_BYTES, MAX_BUFFER):  # an endless line: give up on this direction
                    self._abandon(is_orig, ts)
                    return
                buf += data[pos:]
                return
            line = data[pos:start]
            pos = end
            if is_orig:
                _request_line_or_message(self, line, ts)
            else:
                _reply_line_or_message(self, line, ts)

    def _headers_done(self, is_orig: bool, msg: Message, ts: float) -> None:
        ctype = (msg.header("CONTENT-TYPE") or b"").decode("latin-1")
        msg.content_type = ctype
        msg.disposition = (msg.header("CONTENT-DISPOSITION") or b"").decode("utf-8", "replace")
        if msg.encoding:
            msg.decoder = Decoder(msg.encoding)
        if not is_orig and self.connect and self.reply_code == 200:
            self._message_done(False, ts)  # the tunnel starts: hand the connection over
            self.redetect = True
            self.done = True
            return
        if msg.expect_body is False:
            self._message_done(is_orig, ts)
            return
        length = msg.content_length
        if msg.range_length is not None:
            length = msg.range_length if length is None else max(length, msg.range_length)
        if msg.chunked:
            msg.state = CHUNK_SIZE
        elif length is not None:
            if length > 0:
                msg.state = BODY_LENGTH
                msg.remaining = length
            else:
                self._message_done(is_orig, ts)
        elif (self.connection_close and not is_orig) or msg.encoding or msg.expect_body:
            msg.state = BODY_CLOSE
            msg.linewise = not ((self.connection_close and not is_orig) or msg.encoding)
        else:
            self._message_done(is_orig, ts)

    def _header_continued(self, is_orig: bool, name: str, value: bytes) -> None:
        rec = self._set_state(is_orig, self.last_ts)
        field = {"HOST": "host", "USER-AGENT": "user_agent", "REFERER": "referrer",
                 "ORIGIN": "origin"}.get(name)
        if is_orig and field:
            rec[field] = zeek_str(value)

    def _http09(self, data: bytes, ts: float) -> None:
        msg = self.rep.msg
        if msg is None or msg.state != BODY_CLOSE:
            self.rep_version = (0, 9)
            self.connection_close = True
            self._ev_reply((0, 9), 0, "<empty>", ts)
            msg = self.rep.msg = Message(False, True, ts, (0, 9))
            msg.state = BODY_CLOSE
        msg.add_body(data)

    @cython.locals(d=_Dir)
    def _message_done(self, is_orig: bool, ts: float) -> None:
        d = self.req if is_orig else self.rep
        msg = d.msg
        if msg is None:
            return
        d.msg = None
        if is_orig:
            d.state = LINE
        else:
            code = self.reply_code
            if not 100 <= code < 200 and self.unanswered:
                self.unanswered.popleft()
            d.state = LINE
            if code == 101 and self.upgrade and self.upgrade_proto:
                d.state = NOTHING
                self.req.state = NOTHING
                self.redetect = True
            self.reply_code = 0
            self.upgrade = False
            self.upgrade_proto = ""
        self._ev_message_done(is_orig, msg, ts)

    def _abandon(self, is_orig: bool, ts: float) -> None:
        """Give up on a direction (oversized header, gap outside a body): as Zeek's interruption."""
        if is_orig:
            self._interrupt(True, ts)
            self._interrupt(False, ts)
            self.req.state = self.rep.state = NOTHING
        else:
            self._interrupt(False, ts)
            self.rep.state = NOTHING
        (self.req if is_orig else self.rep).buf.clear()

    def _interrupt(self, is_orig: bool, ts: float) -> None:
        if (self.req if is_orig else self.rep).msg is not None:
            self._message_done(is_orig, ts)

    def _gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost (Zeek's Undelivered): a body of known length, a chunk's data or a body read
        until the connection ends skips them (counted as missing); otherwise the message is
        interrupted (logged with what is known) and the direction resynchronises at its next
        request (status) line."""
        d = self.req if is_orig else self.rep
        msg = d.msg
        if msg is not None and not d.buf:
            if msg.state == BODY_CLOSE:
                msg.skip(nbytes)
                return
            if msg.state in (BODY_LENGTH, CHUNK_DATA):
                take = min(nbytes, msg.remaining)
                msg.skip(take)
                msg.remaining -= take
                nbytes -= take
                if msg.remaining <= 0:
                    if msg.state == CHUNK_DATA:
                        msg.state = CHUNK_CRLF
                    else:
                        self._message_done(is_orig, ts)
                if nbytes == 0:
                    return
        if d.state == HTTP09:
            return  # the rest of the connection is the reply's body
        self._resync(is_orig, ts)

    def _resync(self, is_orig: bool, ts: float) -> None:
        d = self.req if is_orig else self.rep
        d.buf.clear()
        if d.state == NOTHING:
            return  # a direction given up (upgrade, oversized header) stays so
        self._interrupt(is_orig, ts)
        d.state = RESYNC
        if is_orig:
            return
        # the replies to the requests already sent were (partly) lost: their records are written
        # with what is known, and the next reply answers the request after them
        keep = 1 if self.req.msg is not None else 0  # a request still being read waits for its reply
        while len(self.unanswered) > keep:
            self.unanswered.popleft()
        last = self.cur_req - keep
        for key in sorted(k for k in self.pending if self.cur_resp <= k <= last and k != 0):
            self._write(key, ts)
        self.cur_resp = max(self.cur_resp, last)

    def _end(self, ts: float) -> None:
        for is_orig in (True, False):  # a last line without its end of line still counts
            if (self.req if is_orig else self.rep).buf and not self.done:
                self._deliver(is_orig, b"\n", ts)
        if not self.done:
            # the order Zeek's EndpointEOF usually sees: the server closes after its reply
            self._interrupt(False, ts)
            self._interrupt(True, ts)
        for key in sorted(self.pending):
            if key != 0:
                self._write(key, ts)
        self.pending.clear()
        self.ntlm.end(ts)


# ---- the analyzer's line handling (HTTP.cc), as module functions: called in C when compiled ----

@cython.cfunc
@cython.locals(d=_Dir)
def _request_line_or_message(p: HTTP, line: bytes, ts: float) -> None:
    d = p.req
    if d.state == LINE:
        parsed = parse_request_line(line)
        if parsed is None:
            if line:
                d.state = NOTHING
            return
        method, uri, version = parsed
        d.state = IN_MESSAGE
        p.unanswered.append(method)
        if method.upper() == "CONNECT":
            p.connect = True
        p.req_version = version
        p._ev_request(method, uri, ts)
        msg = d.msg = Message(True, None, ts, version)
        msg.header_bytes = len(line)
        if version == (0, 9):
            p.rep.state = HTTP09
    elif d.state == IN_MESSAGE and d.msg is not None:
        _message_line(p, True, line, ts)


@cython.cfunc
@cython.locals(d=_Dir)
def _reply_line_or_message(p: HTTP, line: bytes, ts: float) -> None:
    d = p.rep
    if d.state == LINE:
        parsed = parse_status_line(line)
        if parsed is None:
            if line:
                d.state = NOTHING
            return
        version, code, reason = parsed
        p.rep_version = version
        p.reply_code = code
        d.state = IN_MESSAGE
        if p.connect and code != 200:
            p.connect = False
        p._ev_reply(version, code, reason, ts)
        method = p.unanswered[0] if p.unanswered else ""
        expect = not (method.upper() == "HEAD" or 100 <= code < 200 or code in (204, 304))
        msg = d.msg = Message(False, expect, ts, version)
        msg.header_bytes = len(line)
    elif d.state == IN_MESSAGE and d.msg is not None:
        _message_line(p, False, line, ts)


@cython.cfunc
@cython.locals(line=bytes, state=cython.int, first=cython.int)
def _message_line(p: HTTP, is_orig: bool, line: bytes, ts: float) -> None:
    msg = p.req.msg if is_orig else p.rep.msg
    assert msg is not None
    state = msg.state
    if state == HEADERS or state == TRAILER:
        msg.header_bytes += len(line) + 2
        if msg.header_bytes > MAX_HEADER_BYTES:
            p._abandon(is_orig, ts)
            return
        if line:
            first = line[0]
            if (first == 0x20 or first == 0x09) and msg.headers:  # folded continuation
                name, value = msg.headers[-1]
                msg.headers[-1] = (name, value + b" " + line.strip())
                if state == HEADERS:
                    p._header_continued(is_orig, name, msg.headers[-1][1])
                return
            name, sep, value = line.partition(b":")
            if not sep:
                return
            hname = name.strip().decode("latin-1").upper()
            value = value.strip()
            msg.headers.append((hname, value))
            if state == HEADERS:
                _header(p, is_orig, msg, hname, value, ts)
            return
        if msg.state == TRAILER:
            p._message_done(is_orig, ts)
        else:
            p._headers_done(is_orig, msg, ts)
    elif msg.state == CHUNK_SIZE:
        size = atoi(line, 16)
        if size is None:
            size = 0
        if size > 0:
            msg.state = CHUNK_DATA
            msg.remaining = size
        else:
            msg.state = TRAILER
    elif msg.state == CHUNK_CRLF:
        msg.state = CHUNK_SIZE


@cython.cfunc
def _header(p: HTTP, is_orig: bool, msg: Message, name: str, value: bytes, ts: float) -> None:
    if name == "CONTENT-LENGTH":
        msg.content_length = atoi(value) or 0
    elif name == "CONTENT-RANGE" and not is_orig and p.reply_code == 206:
        m = re.match(rb"\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/", value)
        if m and int(m.group(2)) - int(m.group(1)) + 1 > 0:
            msg.range_length = int(m.group(2)) - int(m.group(1)) + 1
        msg.range = content_range(value)
    elif name == "TRANSFER-ENCODING":
        if value.split(b",")[0].strip().lower() == b"chunked" and msg.version == (1, 1):
            msg.chunked = True
    elif name == "CONTENT-ENCODING":
        token = value.split(b",")[0].strip().lower()
        if token in (b"gzip", b"x-gzip"):
            msg.encoding = "gzip"
        elif token == b"deflate":
            msg.encoding = "deflate"
    elif name == "CONNECTION" and not is_orig:
        token = value.split(b",")[0].strip().lower()
        if token == b"close":
            p.connection_close = True
        elif token == b"upgrade":
            p.upgrade = True
    elif name == "UPGRADE" and not is_orig:
        p.upgrade_proto = value.decode("latin-1")
    p._ev_header(is_orig, name, value, ts)
