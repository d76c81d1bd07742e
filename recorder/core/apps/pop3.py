"""POP3 (RFC 1939): one pop3 record per command with its status reply; logins as credentials.

USER/PASS, APOP (the user only: the digest is not a password) and AUTH PLAIN / LOGIN (initial
response or after ``+ ``) become credentials, successful on ``+OK`` and failed on ``-ERR``.
Multi-line replies (RETR, TOP, LIST, UIDL, CAPA, ...) are skipped up to their ``.`` line so
message text is never read as a status. STLS hands the connection over after its ``+OK``.
The log is Wiretrail's own (Zeek has no pop3.log); PASS arguments are logged as ``<hidden>``.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.sasl import sasl_response

MAX_PENDING = 100
MULTILINE = frozenset({"RETR", "TOP", "CAPA"})  # and LIST/UIDL/AUTH without an argument


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


COMMANDS = frozenset({"USER", "PASS", "APOP", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP", "UIDL",
                      "CAPA", "STLS", "AUTH", "XTND", "LAST"})


class POP3(Parser):
    service = "pop3"
    ports = frozenset({110})
    logs: ClassVar[dict[str, LogFields]] = {"pop3": CONN_ID + (
        ("user", "string"), ("command", "string"),
        ("arg", "string"), ("reply", "string"))}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: b"", False: b""}
        self.pending: deque[dict] = deque()
        self.user: str | None = None
        self.greeted = False
        self.in_body = False  # server is sending a multi-line reply
        self.auth: dict | None = None  # SASL exchange in progress
        self.resync = {True: False, False: False}  # after a gap: wait for a line that parses

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        line = data.split(b"\n", 1)[0]
        if is_orig:
            return line[:5].upper() in (b"USER ", b"APOP ", b"CAPA\r", b"STLS\r")
        return line.startswith(b"+OK") and (b"POP" in line.upper() or conn.resp_p == 110)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig] + data
        pos = 0
        while not self.redetect:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line, pos = _text(buf[pos:nl]).rstrip("\r"), nl + 1
            if self.resync[is_orig]:
                if not (line.split(" ", 1)[0].upper() in COMMANDS if is_orig else line.startswith(("+OK", "-ERR"))):
                    continue  # the tail of a line whose start was lost
                self.resync[is_orig] = False
            if is_orig:
                self._request(line, ts)
            else:
                self._reply(line, ts)
        self.buf[is_orig] = buf[pos:][-MAX_BUFFER:]

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost: the commands awaiting a reply are logged unanswered (their replies, or the
        commands the replies answer, may be in the gap: pairing them by order would shift every
        later pair), and each side goes on at its next line that parses."""
        self.buf[is_orig] = b""
        self.resync[is_orig] = True
        if not is_orig:
            self.in_body = False
        while self.pending:
            self._done(self.pending.popleft(), None)

    def end(self, ts: float) -> None:
        while self.pending:
            self._done(self.pending.popleft(), None)

    def _request(self, line: str, ts: float) -> None:
        if self.auth is not None and self.auth.get("step"):
            self._sasl(line.strip())
            return
        cmd, _, arg = line.strip().partition(" ")
        cmd = cmd.upper()
        if not cmd:
            return
        entry = {"ts": ts, "command": cmd, "arg": arg.strip(), "user": None, "secret": None, "cred": False}
        if cmd == "USER":
            self.user = arg.strip()
        elif cmd == "PASS":
            entry.update(user=self.user, secret=arg, cred=True, arg="<hidden>")
        elif cmd == "APOP":
            self.user = arg.split(" ", 1)[0]
            entry.update(user=self.user, cred=True)
        elif cmd == "AUTH" and arg.strip():
            mech, _, initial = arg.strip().partition(" ")
            self.auth = {"mech": mech.upper(), "user": None, "secret": None, "entry": entry, "step": False}
            if initial:
                self._sasl(initial.strip())
        entry["user"] = entry["user"] or self.user
        if len(self.pending) < MAX_PENDING:
            self.pending.append(entry)

    def _sasl(self, value: str) -> None:
        a = self.auth
        if a is None:
            return
        if value == "*":
            self.auth = None
            return
        sasl_response(a, value)
        a["step"] = False

    def _reply(self, line: str, ts: float) -> None:
        if self.in_body:
            if line == ".":
                self.in_body = False
            return
        if line.startswith("+ ") or line == "+":
            if self.auth is not None:
                self.auth["step"] = True  # the server asks for the next SASL response
            return
        if not line.startswith(("+OK", "-ERR")):
            return
        ok = line.startswith("+OK")
        if not self.greeted and not self.pending:
            self.greeted = True
            return
        self.greeted = True
        if not self.pending:
            return
        entry = self.pending.popleft()
        cmd, arg = entry["command"], entry["arg"]
        if ok and (cmd in MULTILINE or (cmd in ("LIST", "UIDL", "AUTH") and not arg)):
            self.in_body = True
        if cmd == "AUTH" and self.auth is not None:
            a, self.auth = self.auth, None
            if a["user"] is not None or a["secret"] is not None:
                self.user = a["user"] or self.user
                self.out.credential(self.conn, ts=entry["ts"], protocol="POP3", user=a["user"],
                                    secret=a["secret"], success=ok, note=f"AUTH {a['mech']}")
        self._done(entry, line)
        if cmd == "STLS" and ok:
            self.redetect = True

    def _done(self, entry: dict, reply: str | None) -> None:
        if entry["cred"]:
            success = None if reply is None else reply.startswith("+OK")
            self.out.credential(self.conn, ts=entry["ts"], protocol="POP3", user=entry["user"],
                                secret=entry["secret"], success=success,
                                note="APOP" if entry["command"] == "APOP" else None)
        self.out.log("pop3", {"ts": entry["ts"], "user": entry["user"], "command": entry["command"],
                              "arg": entry["arg"] or None, "reply": reply}, self.conn)
