"""SMTP: smtp.log with Zeek's meaning, mail bodies as files, AUTH credentials, STARTTLS.

One smtp.log record per mail transaction, as Zeek's ``base/protocols/smtp/main.zeek``:
``trans_depth`` counts the messages transferred so far plus one; a record is written when the
reply to the end of DATA (``.``) or to the last BDAT chunk arrives, when a new MAIL FROM starts
while the current record has client activity, and when the connection ends. Header fields come
from the transaction's first top-level entity only (Zeek stops reading headers once a second
entity starts). Values are kept as sent (Zeek does not decode RFC 2047 encoded-words).

The client enters the data phase on DATA without waiting for 354 (Zeek logs one-sided captures
too) and leaves it again if the DATA reply is negative before any data line arrived. BDAT
(RFC 3030) chunks are counted in bytes, ``BDAT 0 LAST`` included; an unparsable chunk size leaves
the connection in command mode.
"""

from __future__ import annotations

import re
from collections import deque
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.mime import email_addrs, ipv4_addresses, leaf_entities, mime_addresses, split_headers
from recorder.core.apps.sasl import sasl_response

MAX_MESSAGE = 64 << 20  # bytes of one message kept for header and attachment extraction
MAX_PENDING = 100  # commands awaiting a reply
MAX_RCPT = 1000
_REPLY = re.compile(rb"^(\d{3})([ -]?)(.*)$", re.S)
# SMTP::webmail_user_agents (policy/protocols/smtp/software.zeek), matched on User-Agent only
_WEBMAIL = re.compile(r"^iPlanet Messenger|^Sun Java\(tm\) System Messenger Express|\(IMP\)|^SquirrelMail"
                      r"|^NeoMail|ZimbraWebClient")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


VERBS = frozenset({b"HELO", b"EHLO", b"MAIL", b"RCPT", b"DATA", b"BDAT", b"RSET", b"VRFY", b"EXPN", b"HELP",
                   b"NOOP", b"QUIT", b"AUTH", b"STARTTLS", b"TURN", b"ETRN", b"ATRN", b"XCLIENT", b"XFORWARD"})

class SMTP(Parser):
    service = "smtp"
    ports = frozenset({25, 587, 2525})
    logs: ClassVar[dict[str, LogFields]] = {"smtp": CONN_ID + (
        ("trans_depth", "count"), ("helo", "string"),
        ("mailfrom", "string"), ("rcptto", "set[string]"), ("date", "string"), ("from", "string"),
        ("to", "set[string]"), ("cc", "set[string]"), ("reply_to", "string"), ("msg_id", "string"),
        ("in_reply_to", "string"), ("subject", "string"), ("x_originating_ip", "addr"),
        ("first_received", "string"), ("second_received", "string"), ("last_reply", "string"),
        ("path", "vector[addr]"), ("user_agent", "string"), ("tls", "bool"), ("fuids", "vector[string]"),
        ("is_webmail", "bool"))}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: b"", False: b""}
        self.mode = "cmd"  # client side: cmd, data, bdat, auth
        self.bdat_left = 0
        self.bdat_last = False
        self.data_lines = 0
        self.message = bytearray()
        self.message_ts = conn.start
        self.pending: deque[str] = deque()
        self.resync = False  # after a client gap: wait for a line that parses as a command
        self.greeted = False
        self.helo: str | None = None
        self.messages_transferred = 0
        self.mail_from_seen = False
        self.rcpt_to_seen = False
        self.bdat_last_observed = False
        self.auth: dict | None = None  # mechanism, user, secret, step while AUTH runs
        self.info: dict | None = None

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        line = data.split(b"\n", 1)[0].upper()
        if is_orig:
            return line[:5] in (b"EHLO ", b"HELO ") or line.rstrip() in (b"EHLO", b"HELO")
        return line.startswith((b"220 ", b"220-")) and b"SMTP" in line

    # -- records ---------------------------------------------------------------------------------

    def _new_info(self, ts: float) -> dict:
        return {"ts": ts, "trans_depth": self.messages_transferred + 1, "helo": self.helo,
                "mailfrom": None, "rcptto": None, "date": None, "from": None, "to": None, "cc": None,
                "reply_to": None, "msg_id": None, "in_reply_to": None, "subject": None,
                "x_originating_ip": None, "first_received": None, "second_received": None,
                "last_reply": None, "path": [self.conn.resp_h, self.conn.orig_h], "user_agent": None,
                "tls": False, "fuids": [], "is_webmail": False,
                "_activity": False, "_entities": 0}

    def _session(self, ts: float) -> dict:
        if self.info is None:
            self.info = self._new_info(ts)
        return self.info

    def _write(self) -> None:
        """Zeek's ``smtp_message``: write the record if the client did something."""
        if self.info is not None and self.info["_activity"]:
            rec = {k: v for k, v in self.info.items() if not k.startswith("_")}
            self.out.log("smtp", rec, self.conn)
            self.info = self._new_info(self.info["ts"])

    # -- stream handling -------------------------------------------------------------------------

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.redetect:
            return
        if is_orig:
            self._client(data, ts)
        else:
            self._server(data, ts)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost: replies awaited are dropped (pairing by order across the gap would shift
        every later pair); the client goes on at its next line that parses as a command."""
        self.buf[is_orig] = b""
        self.pending.clear()
        if is_orig:
            self.resync = True
        if is_orig and self.mode in ("data", "bdat"):
            self._end_message(ts)  # what arrived is kept; the chunk/message is over for us
            self.mode = "cmd"
            self.bdat_left = 0

    def end(self, ts: float) -> None:
        if self.mode in ("data", "bdat") and self.message:
            self._end_message(ts)
        self._finish_auth(None, ts)
        self._write()

    def _client(self, data: bytes, ts: float) -> None:
        buf = self.buf[True] + data
        pos = 0
        while pos < len(buf) and not self.redetect:
            if self.mode == "bdat":
                take = min(self.bdat_left, len(buf) - pos)
                self._append(buf[pos:pos + take])
                pos, self.bdat_left = pos + take, self.bdat_left - take
                if self.bdat_left == 0:
                    self._bdat_done(ts)
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line, pos = buf[pos:nl + 1], nl + 1
            if self.resync and self.mode == "cmd":
                if line.split(b" ", 1)[0].strip().upper() not in VERBS:
                    continue  # the tail of a line whose start was lost
            self.resync = False
            if self.mode == "data":
                self._data_line(line, ts)
            elif self.mode == "auth":
                self._auth_line(_text(line).strip(), ts)
            else:
                self._command(_text(line).rstrip("\r\n"), ts)
        self.buf[True] = buf[pos:][-MAX_BUFFER:]

    def _server(self, data: bytes, ts: float) -> None:
        buf = self.buf[False] + data
        pos = 0
        while not self.redetect:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line, pos = buf[pos:nl].rstrip(b"\r"), nl + 1
            m = _REPLY.match(line)
            if m:
                self._reply(int(m.group(1)), _text(m.group(3)).strip(), m.group(2) == b"-", ts)
        self.buf[False] = buf[pos:][-MAX_BUFFER:]

    # -- client side -----------------------------------------------------------------------------

    def _push(self, cmd: str) -> None:
        if len(self.pending) < MAX_PENDING:
            self.pending.append(cmd)

    def _command(self, line: str, ts: float) -> None:
        if not line.strip():
            return
        cmd, _, arg = line.strip().partition(" ")
        cmd, arg = cmd.upper(), arg.strip()
        info = self._session(ts)
        self._push(cmd if cmd != "." else "<.>")  # a lone dot outside DATA ends no message
        if cmd in ("HELO", "EHLO"):
            self.helo = info["helo"] = arg
        elif cmd == "MAIL" and arg[:5].upper() == "FROM:":
            self._write()
            info = self._session(ts)
            addrs = email_addrs(arg)
            if addrs:
                info["mailfrom"] = addrs[0]
            info["_activity"] = True
            self.mail_from_seen, self.rcpt_to_seen = True, False
        elif cmd == "RCPT" and arg[:3].upper() == "TO:":
            rcpt = info["rcptto"] if info["rcptto"] is not None else []
            for a in email_addrs(arg):
                a = re.sub(r"ORCPT=rfc822;?", "", a)
                if a not in rcpt and len(rcpt) < MAX_RCPT:
                    rcpt.append(a)
            info["rcptto"] = rcpt
            info["_activity"] = True
            self.rcpt_to_seen = True
        elif cmd == "DATA":
            self.mode, self.data_lines = "data", 0
            self._start_message(ts)
        elif cmd == "BDAT":
            parts = arg.split()
            last = len(parts) > 1 and parts[1].upper() == "LAST"
            if not parts or not re.fullmatch(r"[0-9]{1,12}", parts[0]):
                return  # Zeek: invalid chunk size, stay in command mode
            size = int(parts[0])
            if not self.message and not self.bdat_last:
                self._start_message(ts)
            self.bdat_last = last
            if last:
                self.mail_from_seen = self.rcpt_to_seen = False
                self.bdat_last_observed = True
            self.bdat_left = size
            if size:
                self.mode = "bdat"
            else:
                self._bdat_done(ts)
        elif cmd == "AUTH":
            mech, _, initial = arg.partition(" ")
            self.auth = {"mech": mech.upper(), "user": None, "secret": None, "ts": ts}
            if initial and initial != "=":
                self._auth_value(initial.strip())

    def _start_message(self, ts: float) -> None:
        self.message = bytearray()
        self.message_ts = ts

    def _append(self, data: bytes) -> None:
        room = MAX_MESSAGE - len(self.message)
        if room > 0:
            self.message += data[:room]

    def _data_line(self, line: bytes, ts: float) -> None:
        if line.rstrip(b"\r\n") == b".":
            self.mode = "cmd"
            self._push(".")
            self.mail_from_seen = self.rcpt_to_seen = False
            self._end_message(ts)
            return
        self.data_lines += 1
        self._append(line[1:] if line.startswith(b"..") else line)

    def _bdat_done(self, ts: float) -> None:
        self.mode = "cmd"
        if self.bdat_last:
            self.bdat_last = False
            self._end_message(ts)

    def _end_message(self, ts: float) -> None:
        raw, self.message = bytes(self.message), bytearray()
        info = self._session(ts)
        info["_entities"] += 1
        if info["_entities"] == 1:
            self._headers(info, raw)
        inspect = self.out.inspect if getattr(self.out, "inspecting", False) else None
        for ent in leaf_entities(raw):
            fuid = self.out.file(self.conn, ts=self.message_ts, data=ent.body, is_orig=True, source="SMTP",
                                 filename=ent.filename, mime_type=ent.mime_type)
            info["fuids"].append(fuid)
            if inspect is not None and ent.filename:  # an attachment: a file, as Suricata's file.data sees it
                inspect(self.conn, True, ts, self.messages_transferred, {"file.data": ent.body})

    def _headers(self, info: dict, raw: bytes) -> None:
        for name, value in split_headers(raw):
            if name == "MESSAGE-ID":
                info["msg_id"] = value
            elif name == "RECEIVED":
                if info["first_received"] is not None:
                    info["second_received"] = info["first_received"]
                info["first_received"] = value
                ips = ipv4_addresses(value)
                ip = ips[1] if len(ips) > 1 else (ips[0] if ips else None)
                if ip and info["path"][-1] != ip and len(info["path"]) < 1000:
                    info["path"].append(ip)
            elif name in ("IN-REPLY-TO", "SUBJECT", "FROM", "REPLY-TO", "DATE"):
                info[{"IN-REPLY-TO": "in_reply_to", "REPLY-TO": "reply_to"}.get(name, name.lower())] = value
            elif name in ("TO", "CC"):
                key = name.lower()
                have = info[key] or []
                info[key] = have + [a for a in mime_addresses(value) if a not in have][:1000 - len(have)]
            elif name == "X-ORIGINATING-IP":
                ips = ipv4_addresses(value)
                if ips:
                    info["x_originating_ip"] = ips[0]
            elif name in ("X-MAILER", "USER-AGENT", "X-USER-AGENT"):
                info["user_agent"] = value
                if name == "USER-AGENT" and _WEBMAIL.search(value):
                    info["is_webmail"] = True

    # -- AUTH ------------------------------------------------------------------------------------

    def _auth_line(self, line: str, ts: float) -> None:
        self._push("AUTH")
        self.mode = "cmd"  # the next 334 asks for another line
        if line == "*":
            self.auth = None
            return
        self._auth_value(line)

    def _auth_value(self, value: str) -> None:
        if self.auth is not None:
            sasl_response(self.auth, value)

    def _finish_auth(self, success: bool | None, ts: float) -> None:
        a, self.auth = self.auth, None
        if self.mode == "auth":
            self.mode = "cmd"
        if a is not None and (a["user"] is not None or a["secret"] is not None):
            self.out.credential(self.conn, ts=a["ts"], protocol="SMTP", user=a["user"], secret=a["secret"],
                                success=success, note=f"AUTH {a['mech']}" if a["mech"] else None)

    # -- server side -----------------------------------------------------------------------------

    def _reply(self, code: int, msg: str, cont: bool, ts: float) -> None:
        info = self._session(ts)
        info["last_reply"] = f"{code} {msg}"
        if not self.greeted and code in (220, 421, 554):
            self.greeted = not cont  # the server's greeting answers no command
            return
        self.greeted = True
        if cont:
            return
        cmd = self.pending.popleft() if self.pending else ""
        if cmd == "DATA" and code >= 400 and self.mode == "data" and not self.data_lines:
            self.mode = "cmd"
            self.message = bytearray()
        elif cmd == "." or (cmd == "BDAT" and self.bdat_last_observed):
            self.messages_transferred += 1
            self.bdat_last_observed = False
            self._write()
            self.info = self._new_info(ts)
        elif cmd == "AUTH" and self.auth is not None:
            if code == 334:
                self.mode = "auth"
            else:
                self._finish_auth(200 <= code < 300, ts)
        elif cmd == "STARTTLS" and code == 220:
            info["tls"] = True
            info["_activity"] = True
            self.redetect = True
