"""The script half of the HTTP parser (Zeek's ``base/protocols/http/main.zeek``): http.log records.

``HTTPRecords`` is mixed into ``apps.http.HTTP``: the analyzer's events (request, reply, header,
message done) fill the pending records, matched in order for pipelining; a record is written when
its reply completes. Bodies become files (each part of a multipart body, a 206 reply's body as a
piece of the file its URL names); Basic and Digest Authorization headers and login forms become
credentials; NTLM in Authorization/WWW-Authenticate headers goes to ntlm.log.
"""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qsl

from recorder.core.apps.base import CONN_ID
from recorder.core.apps.http_message import (
    Message,
    content_range,
    host_name,
    is_ip,
    linewise_len,
    unescape_uri,
    zeek_str,
)
from recorder.core.apps.libhtp import MAX_PENDING
from recorder.core.apps.mime import body_leaves, head_value, multipart_parts, param

MAX_FORM_BYTES = 1 << 20  # bodies larger than this are not searched for login forms

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

_EMPTY_RECORD = {"ts": None, "trans_depth": 0, "method": None, "host": None, "uri": None,
                 "referrer": None, "version": None, "user_agent": None, "origin": None,
                 "request_body_len": 0, "response_body_len": 0, "status_code": None,
                 "status_msg": None, "info_code": None, "info_msg": None, "tags": None,
                 "username": None, "password": None, "proxied": None, "orig_fuids": None,
                 "orig_filenames": None, "orig_mime_types": None, "resp_fuids": None,
                 "resp_filenames": None, "resp_mime_types": None}  # a new record's fields, in order


class HTTPRecords:
    """http.log records from the analyzer's events; mixed into ``HTTP`` (which owns the state)."""

    def _new_record(self, ts: float) -> dict:
        self.depth += 1
        rec = _EMPTY_RECORD.copy()  # a copy of a dict with the same keys: cheaper than building one
        rec["ts"] = ts
        rec["trans_depth"] = self.depth
        rec["tags"] = []
        return rec

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
            if name in ("WWW-AUTHENTICATE", "PROXY-AUTHENTICATE"):
                self._challenge(value, ts)
            return
        text = zeek_str(value)
        if name == "REFERER":
            rec["referrer"] = text
        elif name == "HOST":
            rec["host"] = text
            host = host_name(value.decode("utf-8", "replace"))
            if host and host not in self.named and len(self.named) < MAX_PENDING and not is_ip(host):
                self.named.add(host)
                self.out.name(self.conn.resp_h, host, ts=ts, source="http")
        elif name == "ORIGIN":
            rec["origin"] = text
        elif name == "USER-AGENT":
            rec["user_agent"] = text
        elif name in PROXY_HEADERS:
            rec["proxied"] = sorted(set(rec["proxied"] or []) | {f"{name} -> {text}"})
        elif name in ("AUTHORIZATION", "PROXY-AUTHORIZATION"):
            self._authorization(rec, value, ts)

    def _authorization(self, rec: dict, value: bytes, ts: float) -> None:
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
            msg = self.ntlm.message(b64(rest), ts)  # ntlm.log; the account seen when the exchange ends
            if msg is not None and msg["type"] == 3:
                extra["ntlm"] = True

    def _challenge(self, value: bytes, ts: float) -> None:
        """A server's NTLM CHALLENGE (``WWW-Authenticate: NTLM|Negotiate <base64>``) gives ntlm.log
        the server's names; a Negotiate answer's SPNEGO result ends the exchange."""
        scheme, _, rest = value.strip().partition(b" ")
        scheme_l = scheme.lower()
        if scheme_l not in (b"ntlm", b"negotiate") or not rest.strip():
            return
        blob = b64(rest.strip())
        self.ntlm.message(blob, ts)
        if scheme_l == b"negotiate":
            self.ntlm.spnego(blob, ts)

    def _ev_message_done(self, is_orig: bool, msg: Message, ts: float) -> None:
        if msg.decoder is None and not msg.missing and len(msg.data) == msg.body_len:
            boundary = param(msg.content_type, "boundary") if msg.content_type.lower().startswith("multipart/") else None
            if boundary or msg.linewise:
                msg.body_len = linewise_len(bytes(msg.data), boundary)
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

    def _files(self, rec: dict, msg: Message, ts: float) -> None:
        if not msg.data and not msg.missing:
            return
        if self._range_pieces(rec, msg, ts):
            return
        side = "orig" if msg.is_orig else "resp"
        parts: list[tuple[bytes, str | None, int | None]]
        ctype = msg.content_type.lower()
        if (ctype.startswith("multipart/") or ctype.startswith("message/")) and not msg.missing:
            parts = [(data, name, None) for data, name in body_leaves(msg.content_type, bytes(msg.data))]
        else:
            total = msg.content_length if msg.content_length is not None and not msg.encoding else None
            parts = [(bytes(msg.data), param(msg.disposition, "filename") if msg.disposition else None, total)]
        for data, filename, total in parts:
            if not data and not msg.missing:
                continue
            fuid = self.out.file(self.conn, ts=ts, data=data, is_orig=msg.is_orig, source="HTTP",
                                 filename=filename, mime_type=None, total_bytes=total,
                                 missing_bytes=msg.missing)
            rec[f"{side}_fuids"] = (rec[f"{side}_fuids"] or []) + [fuid]
            if filename:
                rec[f"{side}_filenames"] = (rec[f"{side}_filenames"] or []) + [filename]

    def _range_pieces(self, rec: dict, msg: Message, ts: float) -> bool:
        """A 206 reply's body (or each part of a multipart/byteranges body) as a piece of the file
        its URL names, at the offset its Content-Range gives: pieces of one URL fetched by one
        client, on this connection or others, make one file (Zeek's range-request file handle)."""
        if msg.is_orig or rec["status_code"] != 206 or msg.missing or msg.encoding or rec["uri"] is None:
            return False
        ctype = msg.content_type.lower()
        if ctype.startswith("multipart/byteranges"):
            boundary = param(msg.content_type, "boundary")
            parts = [(content, content_range(head_value(head, b"content-range").encode("latin-1", "replace")))
                     for _, head, content in multipart_parts(bytes(msg.data), boundary)] if boundary else []
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

    def _form(self, key: int, msg: Message) -> None:
        if not msg.data or len(msg.data) > MAX_FORM_BYTES:
            return
        ctype = msg.content_type.lower()
        fields: list[tuple[str, str]] = []
        if ctype.startswith("application/x-www-form-urlencoded"):
            fields = parse_qsl(bytes(msg.data).decode("utf-8", "replace"), keep_blank_values=True)
        elif ctype.startswith("multipart/form-data"):
            boundary = param(msg.content_type, "boundary")
            if boundary:
                for disp, _, body in multipart_parts(bytes(msg.data), boundary):
                    name = param(disp, "name")
                    if name and param(disp, "filename") is None and len(body) < 4096:
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
        if extra.get("ntlm"):  # the reply to an AUTHENTICATE: 401 refuses it
            self.ntlm.result(None if not code else code < 400, ts)
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


def b64(token: bytes) -> bytes:
    """A base64 header token decoded (padding restored); b"" when it is not base64."""
    try:
        return base64.b64decode(token + b"=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return b""
