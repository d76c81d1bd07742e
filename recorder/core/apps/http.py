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
Credentials: Basic, Digest and NTLM Authorization headers, and login forms (urlencoded or
multipart) with a user and a password field. The Host header names the responder.

Rule engine: when the output is inspecting, every request and response also goes to
``Output.inspect`` with Suricata's sticky buffers (``http.uri``, ``http.header``, ``file.data``...),
read apart from the log by ``apps.http_normalise.Inspector`` the way libhtp reads them;
otherwise that reader does not exist and costs nothing.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import zlib
from collections import deque
from urllib.parse import parse_qsl

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, Output, Parser
from recorder.core.apps.http_normalise import (  # noqa: F401 (normalize_uri: re-exported)
    HEX_DIGITS,
    MAX_FILE_BYTES,
    MAX_HEADER_BYTES,
    MAX_PENDING,
    Inspector,
    normalize_uri,
)
from recorder.core.apps.ntlm import authenticate_user

MAX_FORM_BYTES = 1 << 20  # bodies larger than this are not searched for login forms
MAX_MIME_DEPTH = 30  # nested multipart/message entities followed into a body

FIELDS = CONN_ID + (
        ("trans_depth", "count"), ("method", "string"),
    ("host", "string"), ("uri", "string"), ("referrer", "string"), ("version", "string"),
    ("user_agent", "string"), ("origin", "string"), ("request_body_len", "count"),
    ("response_body_len", "count"), ("status_code", "count"), ("status_msg", "string"),
    ("info_code", "count"), ("info_msg", "string"), ("tags", "set[enum]"),
    ("username", "string"), ("password", "string"), ("proxied", "set[string]"),
    ("orig_fuids", "vector[string]"), ("orig_filenames", "vector[string]"),
    ("orig_mime_types", "vector[string]"), ("resp_fuids", "vector[string]"),
    ("resp_filenames", "vector[string]"), ("resp_mime_types", "vector[string]"),
)

PROXY_HEADERS = frozenset({"FORWARDED", "X-FORWARDED-FOR", "X-FORWARDED-FROM", "CLIENT-IP", "VIA",
                           "XROXY-CONNECTION", "PROXY-CONNECTION"})
USER_FIELDS = frozenset({"user", "username", "user_name", "login", "login_name", "loginname",
                         "email", "e-mail", "mail", "uname", "userid", "user_id", "usr", "log",
                         "name", "account", "j_username", "session[username_or_email]",
                         "login[username]", "user[login]", "user[email]", "user[name]"})
PASS_FIELDS = frozenset({"password", "pass", "passwd", "pwd", "pw", "secret", "passphrase",
                         "passw", "j_password", "user_password", "userpassword", "login_password",
                         "session[password]", "login[password]", "user[password]"})

_TOKEN = frozenset(c for c in range(33, 127) if chr(c) not in '()<>@,;:\\"/[]?={}')
_URI_CHARS = frozenset(b":/?#[]@!$&'()*+,;=-_.~%" + bytes(range(48, 58)) + bytes(range(65, 91))
                       + bytes(range(97, 123)))
_REQUEST_RE = re.compile(rb"^[\r\n]*[!#$%&'*+.^_`|~0-9A-Za-z-]{2,20} +[^ \r\n]+ +HTTP/\d\.\d")
_REQUEST09_RE = re.compile(rb"^(GET|HEAD|POST) +/[^ \r\n]*\r?\n")
_REPLY_RE = re.compile(rb"^HTTP/\d\.\d +\d{3}")
_EOL = re.compile(rb"\r\n|\r|\n")

# Message states, one message per direction at a time.
_HEADERS, _BODY_LENGTH, _BODY_CLOSE, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_CRLF, _TRAILER = range(7)


def zeek_str(raw: bytes) -> str:
    """Bytes as Zeek's ASCII log shows them: UTF-8 kept, other bytes and controls as \\xNN."""
    text = raw.decode("utf-8", "backslashreplace")
    if text.isascii() and text.isprintable():  # the common case: nothing to escape
        return text
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(f"\\x{ord(c):02x}" if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return text


def unescape_uri(uri: bytes) -> bytes:
    """Zeek's unescape_URI: %XX and %uXXXX decoded, a stray or doubled % kept as Zeek keeps it."""
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
        if uri[i] in HEX_DIGITS and uri[i + 1] in HEX_DIGITS:
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


def _version(data: bytes) -> tuple[int, int]:
    if len(data) >= 3 and 48 <= data[0] <= 57 and data[1] == 0x2E and 48 <= data[2] <= 57:
        return data[0] - 48, data[2] - 48
    return 0, 0


def _atoi(value: bytes, base: int = 10) -> int | None:
    """Leading digits of the first token, as Zeek's atoi_n (None when there are none)."""
    m = re.match(rb"\s*([0-9a-fA-F]+)" if base == 16 else rb"\s*([0-9]+)", value)
    return int(m.group(1), base) if m else None


def _param(value: str, name: str) -> str | None:
    m = re.search(r'(?:^|;)\s*' + re.escape(name) + r'\s*=\s*(?:"([^"]*)"|([^;\s]*))', value, re.I)
    return None if m is None else (m.group(1) if m.group(1) is not None else m.group(2))


def _is_ip(text: str) -> bool:
    if not text or not (text[0].isdigit() or ":" in text):  # an IP address starts so (v4) or has a colon (v6)
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_name(host: str) -> str:
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


class _Decoder:
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


class _Message:
    """One request or reply message being read: headers, then the body."""

    def __init__(self, is_orig: bool, expect_body: bool | None, ts: float, version: tuple[int, int]) -> None:
        self.is_orig = is_orig
        self.expect_body = expect_body  # True expected, False not expected, None maybe (requests)
        self.ts = ts
        self.version = version
        self.state = _HEADERS
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
        self.decoder: _Decoder | None = None
        self.content_type = ""
        self.disposition = ""
        self.linewise = False  # Zeek reads this body line by line and counts 2 bytes per line end

    def header(self, name: str) -> bytes | None:
        for n, v in reversed(self.headers):
            if n == name:
                return v
        return None

    def add_body(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.decoder is not None:
            out = self.decoder.feed(chunk, MAX_FILE_BYTES - len(self.data))
            self.body_len += len(out)
            self.data += out
        else:
            self.body_len += len(chunk)
            if len(self.data) < MAX_FILE_BYTES:
                self.data += chunk[:MAX_FILE_BYTES - len(self.data)]


class HTTP(Parser):
    """HTTP parser: writes http.log, files for bodies, credentials and host names."""

    service = "http"
    transport = "tcp"
    logs = {"http": FIELDS}
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
        self.buf = {True: bytearray(), False: bytearray()}
        self.msg: dict[bool, _Message | None] = {True: None, False: None}
        self.req_state = "line"  # line, message, nothing
        self.rep_state = "line"  # line, message, nothing, http09
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

    def _deliver(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig]
        if buf:
            data = bytes(buf) + data
            buf.clear()
        pos, n = 0, len(data)
        while pos < n and not self.done:
            msg = self.msg[is_orig]
            if not is_orig and self.rep_state == "http09":
                self._http09(data[pos:], ts)
                return
            if msg is not None and msg.state in (_BODY_LENGTH, _CHUNK_DATA):
                take = min(msg.remaining, n - pos)
                msg.add_body(data[pos:pos + take])
                pos += take
                msg.remaining -= take
                if msg.remaining <= 0:
                    if msg.state == _CHUNK_DATA:
                        msg.state = _CHUNK_CRLF
                    else:
                        self._message_done(is_orig, ts)
                continue
            if msg is not None and msg.state == _BODY_CLOSE:
                msg.add_body(data[pos:])
                return
            if self.rep_state == "nothing" if not is_orig else self.req_state == "nothing":
                return
            m = _EOL.search(data, pos)
            if m is None or (m.end() == n and m.end() - m.start() == 1 and data[m.start()] == 0x0D):
                # incomplete, or a CR at the end that a LF may follow
                if n - pos > min(MAX_HEADER_BYTES, MAX_BUFFER):  # an endless line: give up on this direction
                    self._abandon(is_orig, ts)
                    return
                buf += data[pos:]
                return
            line = data[pos:m.start()]
            pos = m.end()
            if is_orig:
                self._request_line_or_message(line, ts)
            else:
                self._reply_line_or_message(line, ts)

    def _request_line_or_message(self, line: bytes, ts: float) -> None:
        if self.req_state == "line":
            parsed = self._parse_request(line)
            if parsed is None:
                if line:
                    self.req_state = "nothing"
                return
            method, uri, version = parsed
            self.req_state = "message"
            self.unanswered.append(method)
            if method.upper() == "CONNECT":
                self.connect = True
            self.req_version = version
            self._ev_request(method, uri, ts)
            self.msg[True] = _Message(True, None, ts, version)
            self.msg[True].header_bytes = len(line)
            if version == (0, 9):
                self.rep_state = "http09"
        elif self.req_state == "message" and self.msg[True] is not None:
            self._message_line(True, line, ts)

    def _parse_request(self, line: bytes) -> tuple[str, bytes, tuple[int, int]] | None:
        i = 0
        while i < len(line) and line[i] in _TOKEN:
            i += 1
        if i == 0:
            return None
        j = i
        while j < len(line) and line[j] in b" \t":
            j += 1
        if j == i:
            return None
        rest = line[j:]
        k = 0
        while k < len(rest) and rest[k] in _URI_CHARS:
            k += 1
        end_uri = k
        if k >= len(rest) and rest.startswith(b"HTTP/"):
            end_uri = 0  # missing URI
        version: tuple[int, int] | None = None
        vs = end_uri
        while vs < len(rest):
            end_uri = vs
            while vs < len(rest) and rest[vs] in b" \t":
                vs += 1
            if rest.startswith(b"HTTP/", vs):
                break
            vs += 1
        if vs >= len(rest):
            version = (0, 9)
        elif vs + 8 <= len(rest):
            version = _version(rest[vs + 5:])
        else:
            version = (0, 0)  # bad version: unset
        uri = rest[:end_uri]
        if version == (0, 9) and (i < 3 or not uri):
            return None
        return line[:i].decode("ascii", "replace"), uri, version

    def _reply_line_or_message(self, line: bytes, ts: float) -> None:
        if self.rep_state == "line":
            parsed = self._parse_reply(line)
            if parsed is None:
                if line:
                    self.rep_state = "nothing"
                return
            version, code, reason = parsed
            self.rep_version = version
            self.reply_code = code
            self.rep_state = "message"
            if self.connect and code != 200:
                self.connect = False
            self._ev_reply(version, code, reason, ts)
            method = self.unanswered[0] if self.unanswered else ""
            expect = not (method.upper() == "HEAD" or 100 <= code < 200 or code in (204, 304))
            self.msg[False] = _Message(False, expect, ts, version)
            self.msg[False].header_bytes = len(line)
        elif self.rep_state == "message" and self.msg[False] is not None:
            self._message_line(False, line, ts)

    @staticmethod
    def _parse_reply(line: bytes) -> tuple[tuple[int, int], int, str] | None:
        if not line.startswith(b"HTTP/"):
            return None
        rest = line[5:]
        version = _version(rest)
        m = re.match(rb"[^ \t]*[ \t]+", rest)
        if m is None:
            return None
        rest = rest[m.end():]
        if len(rest) < 3:
            return None
        code = int(rest[:3]) if rest[:3].isascii() and rest[:3].isdigit() else 0
        m = re.match(rb"[^ \t]*[ \t]+", rest[3:])
        if m is None:
            return version, code, "<empty>"
        return version, code, zeek_str(rest[3 + m.end():])

    def _message_line(self, is_orig: bool, line: bytes, ts: float) -> None:
        msg = self.msg[is_orig]
        assert msg is not None
        if msg.state in (_HEADERS, _TRAILER):
            msg.header_bytes += len(line) + 2
            if msg.header_bytes > MAX_HEADER_BYTES:
                self._abandon(is_orig, ts)
                return
            if line:
                if line[:1] in (b" ", b"\t") and msg.headers:  # folded continuation
                    name, value = msg.headers[-1]
                    msg.headers[-1] = (name, value + b" " + line.strip())
                    if msg.state == _HEADERS:
                        self._header_continued(is_orig, name, msg.headers[-1][1])
                    return
                name, sep, value = line.partition(b":")
                if not sep:
                    return
                hname = name.strip().decode("latin-1").upper()
                msg.headers.append((hname, value.strip()))
                if msg.state == _HEADERS:
                    self._header(is_orig, msg, hname, value.strip(), ts)
                return
            if msg.state == _TRAILER:
                self._message_done(is_orig, ts)
            else:
                self._headers_done(is_orig, msg, ts)
        elif msg.state == _CHUNK_SIZE:
            size = _atoi(line, 16)
            if size is None:
                size = 0
            if size > 0:
                msg.state = _CHUNK_DATA
                msg.remaining = size
            else:
                msg.state = _TRAILER
        elif msg.state == _CHUNK_CRLF:
            msg.state = _CHUNK_SIZE

    def _headers_done(self, is_orig: bool, msg: _Message, ts: float) -> None:
        ctype = (msg.header("CONTENT-TYPE") or b"").decode("latin-1")
        msg.content_type = ctype
        msg.disposition = (msg.header("CONTENT-DISPOSITION") or b"").decode("utf-8", "replace")
        if msg.encoding:
            msg.decoder = _Decoder(msg.encoding)
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
            msg.state = _CHUNK_SIZE
        elif length is not None:
            if length > 0:
                msg.state = _BODY_LENGTH
                msg.remaining = length
            else:
                self._message_done(is_orig, ts)
        elif (self.connection_close and not is_orig) or msg.encoding or msg.expect_body:
            msg.state = _BODY_CLOSE
            msg.linewise = not ((self.connection_close and not is_orig) or msg.encoding)
        else:
            self._message_done(is_orig, ts)

    def _header(self, is_orig: bool, msg: _Message, name: str, value: bytes, ts: float) -> None:
        if name == "CONTENT-LENGTH":
            msg.content_length = _atoi(value) or 0
        elif name == "CONTENT-RANGE" and not is_orig and self.reply_code == 206:
            m = re.match(rb"\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/", value)
            if m and int(m.group(2)) - int(m.group(1)) + 1 > 0:
                msg.range_length = int(m.group(2)) - int(m.group(1)) + 1
            msg.range = _content_range(value)
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
                self.connection_close = True
            elif token == b"upgrade":
                self.upgrade = True
        elif name == "UPGRADE" and not is_orig:
            self.upgrade_proto = value.decode("latin-1")
        self._ev_header(is_orig, name, value, ts)

    def _header_continued(self, is_orig: bool, name: str, value: bytes) -> None:
        rec = self._set_state(is_orig, self.last_ts)
        field = {"HOST": "host", "USER-AGENT": "user_agent", "REFERER": "referrer",
                 "ORIGIN": "origin"}.get(name)
        if is_orig and field:
            rec[field] = zeek_str(value)

    def _http09(self, data: bytes, ts: float) -> None:
        msg = self.msg[False]
        if msg is None or msg.state != _BODY_CLOSE:
            self.rep_version = (0, 9)
            self.connection_close = True
            self._ev_reply((0, 9), 0, "<empty>", ts)
            msg = self.msg[False] = _Message(False, True, ts, (0, 9))
            msg.state = _BODY_CLOSE
        msg.add_body(data)

    def _message_done(self, is_orig: bool, ts: float) -> None:
        msg = self.msg[is_orig]
        if msg is None:
            return
        self.msg[is_orig] = None
        if is_orig:
            self.req_state = "line"
        else:
            code = self.reply_code
            if not 100 <= code < 200 and self.unanswered:
                self.unanswered.popleft()
            self.rep_state = "line"
            if code == 101 and self.upgrade and self.upgrade_proto:
                self.rep_state = "nothing"
                self.req_state = "nothing"
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
            self.req_state = self.rep_state = "nothing"
        else:
            self._interrupt(False, ts)
            self.rep_state = "nothing"
        self.buf[is_orig].clear()

    def _interrupt(self, is_orig: bool, ts: float) -> None:
        if self.msg[is_orig] is not None:
            self._message_done(is_orig, ts)

    def _gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        msg = self.msg[is_orig]
        if msg is not None and not self.buf[is_orig] and msg.state in (_BODY_LENGTH, _CHUNK_DATA) \
                and msg.remaining >= nbytes and msg.body_len > 0:
            msg.remaining -= nbytes
            msg.body_len += nbytes
            msg.missing += nbytes
            if msg.decoder is not None:
                msg.decoder.failed = True
            if msg.remaining <= 0:
                if msg.state == _CHUNK_DATA:
                    msg.state = _CHUNK_CRLF
                else:
                    self._message_done(is_orig, ts)
            return
        self._abandon(is_orig, ts)

    def _end(self, ts: float) -> None:
        for is_orig in (True, False):  # a last line without its end of line still counts
            if self.buf[is_orig] and not self.done:
                self._deliver(is_orig, b"\n", ts)
        if not self.done:
            # the order Zeek's EndpointEOF usually sees: the server closes after its reply
            self._interrupt(False, ts)
            self._interrupt(True, ts)
        for key in sorted(self.pending):
            if key != 0:
                self._write(key, ts)
        self.pending.clear()

    # ---- the script (main.zeek) ----

    def _new_record(self, ts: float) -> dict:
        self.depth += 1
        return {"ts": ts, "trans_depth": self.depth, "method": None, "host": None, "uri": None,
                "referrer": None, "version": None, "user_agent": None, "origin": None,
                "request_body_len": 0, "response_body_len": 0, "status_code": None,
                "status_msg": None, "info_code": None, "info_msg": None, "tags": [],
                "username": None, "password": None, "proxied": None, "orig_fuids": None,
                "orig_filenames": None, "orig_mime_types": None, "resp_fuids": None,
                "resp_filenames": None, "resp_mime_types": None}

    def _set_state(self, is_orig: bool, ts: float) -> dict:
        key = self.cur_req if is_orig else self.cur_resp
        if key not in self.pending:
            self.pending[key] = self._new_record(ts)
            self.extra[key] = {}
        self.cur_key = key
        return self.pending[key]

    def _ev_request(self, method: str, uri: bytes, ts: float) -> None:
        if self.cur_req < self.cur_resp:
            self.cur_req = self.cur_resp
        if len(self.pending) > MAX_PENDING:
            if self.cur_resp == 0:
                self.cur_resp += 1
            while self.cur_resp < self.cur_req:
                if self.cur_resp in self.pending:
                    self._write(self.cur_resp, ts)
                self.cur_resp += 1
        self.cur_req += 1
        rec = self._set_state(True, ts)
        rec["method"] = method
        rec["uri"] = zeek_str(unescape_uri(uri))

    def _ev_reply(self, version: tuple[int, int], code: int, reason: str, ts: float) -> None:
        prev = self.pending.get(self.cur_resp)
        if prev is None or (prev["status_code"] is not None and not 100 <= prev["status_code"] < 200):
            self.cur_resp += 1
        rec = self._set_state(False, ts)
        rec["status_code"] = code
        rec["status_msg"] = reason
        rec["version"] = f"{version[0]}.{version[1]}"
        if 100 <= code < 200:
            rec["info_code"] = code
            rec["info_msg"] = reason

    def _ev_header(self, is_orig: bool, name: str, value: bytes, ts: float) -> None:
        rec = self._set_state(is_orig, ts)
        if not is_orig:
            return
        text = zeek_str(value)
        if name == "REFERER":
            rec["referrer"] = text
        elif name == "HOST":
            rec["host"] = text
            host = _host_name(value.decode("utf-8", "replace"))
            if host and host not in self.named and len(self.named) < MAX_PENDING and not _is_ip(host):
                self.named.add(host)
                self.out.name(self.conn.resp_h, host, ts=ts, source="http")
        elif name == "ORIGIN":
            rec["origin"] = text
        elif name == "USER-AGENT":
            rec["user_agent"] = text
        elif name in PROXY_HEADERS:
            rec["proxied"] = sorted(set(rec["proxied"] or []) | {f"{name} -> {text}"})
        elif name in ("AUTHORIZATION", "PROXY-AUTHORIZATION"):
            self._authorization(rec, value)

    def _authorization(self, rec: dict, value: bytes) -> None:
        extra = self.extra.setdefault(self.cur_key, {})
        scheme, _, rest = value.strip().partition(b" ")
        scheme_l = scheme.lower()
        rest = rest.strip()
        if scheme_l == b"basic":
            try:
                userpass = base64.b64decode(rest + b"=" * (-len(rest) % 4), validate=False)
            except (ValueError, TypeError):
                userpass = b""
            user, sep, password = userpass.partition(b":")
            if sep:
                rec["username"] = zeek_str(user)
                extra["auth"] = ("HTTP", user.decode("utf-8", "replace"), password.decode("utf-8", "replace"))
            else:
                rec["username"] = f"<problem-decoding> ({zeek_str(value)})"
        elif scheme_l == b"digest":
            m = re.search(rb'username\s*=\s*(?:"([^"]*)"|([^,\s]*))', rest, re.I)
            if m:
                user = (m.group(1) if m.group(1) is not None else m.group(2)).decode("utf-8", "replace")
                extra["auth"] = ("HTTP", user, None)
        elif scheme_l in (b"ntlm", b"negotiate"):
            user = _ntlm_user(rest)
            if user is not None:
                extra["auth"] = ("NTLM", user, None)

    def _ev_message_done(self, is_orig: bool, msg: _Message, ts: float) -> None:
        if msg.decoder is None and not msg.missing and len(msg.data) == msg.body_len:
            boundary = _param(msg.content_type, "boundary") if msg.content_type.lower().startswith("multipart/") else None
            if boundary or msg.linewise:
                msg.body_len = _linewise_len(bytes(msg.data), boundary)
        rec = self._set_state(is_orig, ts)
        key = self.cur_key
        if is_orig:
            rec["request_body_len"] = msg.body_len
        else:
            rec["response_body_len"] = msg.body_len
        self._files(rec, msg, ts)
        if is_orig:
            self._form(key, msg)
        code = rec["status_code"]
        if not is_orig and not (code is not None and 100 <= code < 200):
            self._write(key, ts)

    def _files(self, rec: dict, msg: _Message, ts: float) -> None:
        if not msg.data and not msg.missing:
            return
        if self._range_pieces(rec, msg, ts):
            return
        side = "orig" if msg.is_orig else "resp"
        parts: list[tuple[bytes, str | None, int | None]]
        ctype = msg.content_type.lower()
        if (ctype.startswith("multipart/") or ctype.startswith("message/")) and not msg.missing:
            parts = [(data, name, None) for data, name in _mime_leaves(msg.content_type, bytes(msg.data), 0)]
        else:
            total = msg.content_length if msg.content_length is not None and not msg.encoding else None
            parts = [(bytes(msg.data), _param(msg.disposition, "filename") if msg.disposition else None, total)]
        for data, filename, total in parts:
            if not data and not msg.missing:
                continue
            fuid = self.out.file(self.conn, ts=ts, data=data, is_orig=msg.is_orig, source="HTTP",
                                 filename=filename, mime_type=None, total_bytes=total,
                                 missing_bytes=msg.missing)
            rec[f"{side}_fuids"] = (rec[f"{side}_fuids"] or []) + [fuid]
            if filename:
                rec[f"{side}_filenames"] = (rec[f"{side}_filenames"] or []) + [filename]

    def _range_pieces(self, rec: dict, msg: _Message, ts: float) -> bool:
        """A 206 reply's body (or each part of a multipart/byteranges body) as a piece of the file
        its URL names, at the offset its Content-Range gives: pieces of one URL fetched by one
        client, on this connection or others, make one file (Zeek's range-request file handle)."""
        if msg.is_orig or rec["status_code"] != 206 or msg.missing or msg.encoding or rec["uri"] is None:
            return False
        ctype = msg.content_type.lower()
        if ctype.startswith("multipart/byteranges"):
            boundary = _param(msg.content_type, "boundary")
            parts = [(content, _content_range(_head_value(head, b"content-range").encode("latin-1", "replace")))
                     for _, head, content in _multipart(bytes(msg.data), boundary)] if boundary else []
        else:
            parts = [(bytes(msg.data), msg.range)]
        if not parts or any(r is None for _, r in parts):
            return False
        url = f"{self.conn.orig_h} {rec['host'] or self.conn.resp_h}{rec['uri']}"
        fuids: list[str] = []
        for data, (start, total) in parts:
            fuid = self.out.file(self.conn, ts=ts, data=data, is_orig=False, source="HTTP", total_bytes=total,
                                 piece=(url, start))
            if fuid not in fuids:
                fuids.append(fuid)
        rec["resp_fuids"] = (rec["resp_fuids"] or []) + [f for f in fuids if f not in (rec["resp_fuids"] or [])]
        return True

    def _form(self, key: int, msg: _Message) -> None:
        if not msg.data or len(msg.data) > MAX_FORM_BYTES:
            return
        ctype = msg.content_type.lower()
        fields: list[tuple[str, str]] = []
        if ctype.startswith("application/x-www-form-urlencoded"):
            fields = parse_qsl(bytes(msg.data).decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype.startswith("multipart/form-data"):
            boundary = _param(msg.content_type, "boundary")
            if boundary:
                for disp, _, body in _multipart(bytes(msg.data), boundary):
                    name = _param(disp, "name")
                    if name and _param(disp, "filename") is None and len(body) < 4096:
                        fields.append((name, body.decode("utf-8", "replace")))
        user = password = None
        for name, value in fields:
            low = name.lower()
            if user is None and low in USER_FIELDS and value:
                user = value
            elif password is None and low in PASS_FIELDS:
                password = value
        if user is not None and password is not None:
            self.extra.setdefault(key, {})["form"] = (user, password)

    def _write(self, key: int, ts: float) -> None:
        rec = self.pending.pop(key, None)
        extra = self.extra.pop(key, {})
        if rec is None:
            return
        self.out.log("http", rec, self.conn)
        code = rec["status_code"]
        if "auth" in extra:
            protocol, user, secret = extra["auth"]
            success = None if not code else code < 400
            self.out.credential(self.conn, ts=rec["ts"], protocol=protocol, user=user, secret=secret,
                                success=success)
        if "form" in extra:
            user, secret = extra["form"]
            success = False if code in (401, 403) else None
            self.out.credential(self.conn, ts=rec["ts"], protocol="HTTP-FORM", user=user, secret=secret,
                                success=success, note=rec["uri"])


def _linewise_len(body: bytes, boundary: str | None) -> int:
    """Zeek's body length for a body read as lines: each line plus 2, up to a closing boundary."""
    if not body:
        return 0
    # inside a multipart body only CRLF ends a line (Zeek's SetCRLFAsEOL(0) for the parts)
    lines = body.split(b"\r\n") if boundary else _EOL.split(body)
    if body.endswith(b"\r\n" if boundary else (b"\n", b"\r")):
        lines.pop()
    total = 0
    close = b"--" + boundary.encode("latin-1", "replace") + b"--" if boundary else None
    for line in lines:
        total += len(line) + 2
        if close is not None and line.rstrip() == close:
            break
    return total


def _mime_leaves(ctype: str, body: bytes, depth: int) -> list[tuple[bytes, str | None]]:
    """The leaf entities of a MIME body (multipart parts, message/* inside): (content, filename)."""
    low = ctype.lower()
    if depth >= MAX_MIME_DEPTH:
        return []
    if low.startswith("message/"):
        head, content = _split_head(body)
        return _mime_leaves(_head_value(head, b"content-type"), content, depth + 1)
    boundary = _param(ctype, "boundary") if low.startswith("multipart/") else None
    if not boundary:
        return [(body, None)]
    leaves: list[tuple[bytes, str | None]] = []
    for disp, head, content in _multipart(body, boundary):
        sub = _head_value(head, b"content-type")
        if sub.lower().startswith(("multipart/", "message/")):
            leaves += _mime_leaves(sub, content, depth + 1)
        elif content:
            leaves.append((content, _param(disp, "filename")))
    return leaves


def _split_head(piece: bytes) -> tuple[bytes, bytes]:
    head, sep, content = piece.partition(b"\r\n\r\n")
    if not sep:
        head, sep, content = piece.partition(b"\n\n")
    return (head, content) if sep else (piece, b"")


def _head_value(head: bytes, name: bytes) -> str:
    for hline in re.split(rb"\r?\n", head):
        hname, _, value = hline.partition(b":")
        if hname.strip().lower() == name:
            return value.strip().decode("utf-8", "replace")
    return ""


def _content_range(value: bytes) -> tuple[int, int | None] | None:
    """``bytes FIRST-LAST/TOTAL`` (TOTAL may be ``*``) -> (FIRST, TOTAL or None)."""
    m = re.match(rb"\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)", value)
    if not m or int(m.group(2)) < int(m.group(1)):
        return None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != b"*" else None)


def _multipart(body: bytes, boundary: str) -> list[tuple[str, bytes, bytes]]:
    """The parts of a multipart body: (Content-Disposition, headers, content)."""
    delim = b"--" + boundary.encode("latin-1", "replace")
    parts = []
    for piece in body.split(delim)[1:]:
        if piece.startswith(b"--"):
            break
        piece = piece[2:] if piece.startswith(b"\r\n") else piece[1:] if piece.startswith(b"\n") else piece
        head, content = _split_head(piece)
        if content.endswith(b"\r\n"):
            content = content[:-2]
        elif content.endswith(b"\n"):
            content = content[:-1]
        parts.append((_head_value(head, b"content-disposition"), head, content))
    return parts


def _ntlm_user(token: bytes) -> str | None:
    """DOMAIN\\user from an NTLM type 3 (AUTHENTICATE) message, base64 as in the header."""
    try:
        blob = base64.b64decode(token + b"=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    return authenticate_user(blob)
