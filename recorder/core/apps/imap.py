"""IMAP4 (RFC 3501): one imap record per tagged command with its tagged status; logins as credentials.

``LOGIN user pass`` (atoms, quoted strings or ``{n}`` literals) and ``AUTHENTICATE PLAIN / LOGIN``
(SASL-IR initial response or after ``+``) become credentials, successful on the tagged ``OK`` and
failed on ``NO``/``BAD``. Server literals (message bodies in FETCH) are skipped by length so their
text is never read as a status. STARTTLS hands the connection over after its tagged OK. The log
is Wiretrail's own (Zeek has no imap.log); LOGIN logs the user only.
"""

from __future__ import annotations

import re
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.sasl import sasl_response

MAX_PENDING = 100
MAX_LITERAL = 1 << 20  # literal bytes kept from a client command (LOGIN arguments are short)
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r?$")
_COMMAND = re.compile(rb"^[A-Za-z0-9.]{1,32} [A-Za-z]{2,16}(?: |$)")  # resynchronisation after a gap
_RESPONSE = re.compile(rb"^(?:\* |\+|[A-Za-z0-9.]{1,32} (?:OK|NO|BAD)\b)")
_TOKEN = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)')


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def tokens(segment: str) -> list[str]:
    """The atoms and quoted strings of one command line segment (parentheses dropped)."""
    out = []
    for m in _TOKEN.finditer(segment):
        out.append(re.sub(r"\\(.)", r"\1", m.group(1)) if m.group(1) is not None else m.group(2))
    return out


class IMAP(Parser):
    service = "imap"
    ports = frozenset({143})
    logs: ClassVar[dict[str, LogFields]] = {"imap": CONN_ID + (
        ("user", "string"), ("command", "string"),
        ("arg", "string"), ("reply", "string"))}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.resync = {True: False, False: False}  # after a gap: wait for a line that parses
        self.buf = {True: b"", False: b""}
        self.parts: list[str] = []  # tokens of the client command being assembled
        self.lit_left = {True: 0, False: 0}
        self.literal = bytearray()
        self.pending: dict[str, dict] = {}
        self.user: str | None = None
        self.auth: dict | None = None  # AUTHENTICATE exchange in progress

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        line = data.split(b"\n", 1)[0]
        if is_orig:
            words = line.split()
            return len(words) >= 2 and words[1].upper() in (b"LOGIN", b"CAPABILITY", b"AUTHENTICATE",
                                                            b"STARTTLS")
        return line.startswith((b"* OK", b"* PREAUTH")) and (b"IMAP" in line.upper() or conn.resp_p == 143)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig] + data
        pos = 0
        while pos < len(buf) and not self.redetect:
            if self.lit_left[is_orig]:
                take = min(self.lit_left[is_orig], len(buf) - pos)
                if is_orig and len(self.literal) < MAX_LITERAL:
                    self.literal += buf[pos:pos + take]
                pos, self.lit_left[is_orig] = pos + take, self.lit_left[is_orig] - take
                if is_orig and not self.lit_left[True]:
                    self.parts.append(_text(bytes(self.literal)))
                    self.literal = bytearray()
                continue
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line, pos = buf[pos:nl + 1].rstrip(b"\r\n"), nl + 1
            if self.resync[is_orig]:
                if not (_COMMAND if is_orig else _RESPONSE).match(line):
                    continue  # the tail of a line whose start was lost
                self.resync[is_orig] = False
            m = _LITERAL.search(line)
            if is_orig:
                self._client_line(line, m, ts)
            else:
                if m:
                    self.lit_left[False] = int(m.group(1))
                self._server_line(_text(line), ts)
        self.buf[is_orig] = buf[pos:][-MAX_BUFFER:]

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost: each side goes on at its next line that parses (a tagged command; an
        untagged, continuation or tagged response); replies pair by tag, so nothing shifts."""
        self.buf[is_orig] = b""
        self.resync[is_orig] = True
        self.lit_left[is_orig] = 0
        if is_orig:
            self.parts, self.literal = [], bytearray()

    def end(self, ts: float) -> None:
        for entry in list(self.pending.values()):
            self._done(entry, None, None)
        self.pending.clear()

    # -- client ----------------------------------------------------------------------------------

    def _client_line(self, line: bytes, literal: re.Match | None, ts: float) -> None:
        if self.auth is not None and self.auth["step"] and not self.parts:
            self._sasl(_text(line).strip())
            return
        segment = _text(line[:literal.start()] if literal else line)
        self.parts.extend(tokens(segment))
        if literal:
            self.lit_left[True] = int(literal.group(1))
            if self.lit_left[True] == 0:
                self.parts.append("")
            return
        parts, self.parts = self.parts, []
        if len(parts) < 2:
            return
        tag, cmd, args = parts[0], parts[1].upper(), parts[2:]
        if cmd == "UID" and args:
            cmd, args = "UID " + args[0].upper(), args[1:]
        entry = {"ts": ts, "tag": tag, "command": cmd, "arg": " ".join(args)[:1024] or None,
                 "user": self.user, "cred": None}
        if cmd == "LOGIN" and args:
            self.user = args[0]
            entry.update(user=self.user, arg=self.user,
                         cred={"user": args[0], "secret": args[1] if len(args) > 1 else None, "mech": None})
        elif cmd == "AUTHENTICATE" and args:
            self.auth = {"mech": args[0].upper(), "user": None, "secret": None, "step": False, "tag": tag}
            entry["cred"] = self.auth
            if len(args) > 1 and args[1] != "=":
                self._sasl(args[1])
        if len(self.pending) < MAX_PENDING:
            self.pending[tag] = entry

    def _sasl(self, value: str) -> None:
        a = self.auth
        if a is None:
            return
        a["step"] = False
        if value == "*":
            a["user"] = a["secret"] = None
            return
        sasl_response(a, value)

    # -- server ----------------------------------------------------------------------------------

    def _server_line(self, line: str, ts: float) -> None:
        if line.startswith("+"):
            if self.auth is not None:
                self.auth["step"] = True
            return
        if line.startswith("*"):
            return
        tag, _, rest = line.partition(" ")
        entry = self.pending.pop(tag, None)
        if entry is None:
            return
        status = rest.split(" ", 1)[0].upper()
        self._done(entry, rest.strip(), status == "OK")
        if entry["command"] == "STARTTLS" and status == "OK":
            self.redetect = True

    def _done(self, entry: dict, reply: str | None, ok: bool | None) -> None:
        cred = entry["cred"]
        if cred is not None:
            if cred is self.auth:
                self.auth = None
            if cred["user"] is not None or cred["secret"] is not None:
                if ok and cred["user"]:
                    self.user = cred["user"]
                self.out.credential(self.conn, ts=entry["ts"], protocol="IMAP", user=cred["user"],
                                    secret=cred["secret"], success=ok,
                                    note=f"AUTHENTICATE {cred['mech']}" if cred["mech"] else None)
        self.out.log("imap", {"ts": entry["ts"], "user": entry["user"] or self.user,
                              "command": entry["command"], "arg": entry["arg"], "reply": reply}, self.conn)
