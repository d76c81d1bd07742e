"""Telnet (RFC 854): logins typed at the server's prompts, as credentials.

IAC option negotiation (WILL/WONT/DO/DONT, subnegotiation up to IAC SE, doubled IAC) is
stripped from both directions. The server's text is watched for a ``login:`` / ``Username:``
prompt and then a ``Password:`` prompt; the line the client types after each (one character per
packet or whole lines; backspace and DEL erase) is the user and the secret. The outcome is the
server's next words: ``Login incorrect`` / ``incorrect`` / ``failed`` / ``denied`` -> failure,
``Last login`` or a shell prompt -> success, nothing before the connection ends -> unknown.

After lost bytes (``gap``) the parser resynchronises at the server's next prompt: the client's
line in progress is dropped up to its end (or the next prompt), option negotiation starts afresh,
and the server text before the gap no longer counts. A login attempt that spans a gap is logged
with what is known (a password whose user name was lost has no user), at the time of the gap (its
start is unknown), with the note ``bytes lost mid-login``.
"""

from __future__ import annotations

import re

from recorder.core.apps.base import Conn, Output, Parser

IAC, SB, SE = 255, 250, 240
MAX_TAIL = 512  # server text kept for prompt matching
MAX_LINE = 256  # characters kept of one typed line
_USER_PROMPT = re.compile(r"(?i)(?:login|user ?name|user)\s*:\s*$")
_PASS_PROMPT = re.compile(r"(?i)pass(?:word|code|phrase)?\s*:\s*$")
_FAILED = re.compile(r"(?i)incorrect|failed|denied|invalid|authentication failure|bad password")
_SUCCESS = re.compile(r"(?i)last login|welcome|(?:^|\n)[^\n]{0,80}[$#>%]\s*$")


class Telnet(Parser):
    service = "telnet"
    ports = frozenset({23})

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.iac = {True: 0, False: 0}  # 0 text, 1 after IAC, 2 option byte, 3 in SB, 4 IAC in SB
        self.tail = ""  # recent server text
        self.typed = ""  # the client's current line
        self.expect: str | None = None  # "user" or "secret": the prompt the client is answering
        self.user: str | None = None
        self.secret: str | None = None
        self.login_ts = conn.start
        self.waiting = False  # a password was typed, the outcome not yet seen
        self.skip = False  # after a client gap: the rest of the line in progress is not the client's answer
        self.gap_ts: float | None = None  # bytes were lost during the current login attempt (when)

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return len(data) >= 3 and data[0] == IAC and 251 <= data[1] <= 254

    def _strip(self, is_orig: bool, data: bytes) -> bytes:
        out = bytearray()
        state = self.iac[is_orig]
        for b in data:
            if state == 0:
                if b == IAC:
                    state = 1
                else:
                    out.append(b)
            elif state == 1:
                if b == IAC:
                    out.append(b)
                    state = 0
                elif 251 <= b <= 254:
                    state = 2
                elif b == SB:
                    state = 3
                else:
                    state = 0
            elif state == 2:
                state = 0
            elif state == 3:
                state = 4 if b == IAC else 3
            else:
                state = 0 if b == SE else 3
        self.iac[is_orig] = state
        return bytes(out)

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        text = self._strip(is_orig, data).decode("latin-1")
        if is_orig:
            self._typed(text, ts)
        else:
            self._server(text, ts)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost: go on at the next line / prompt (see the module's docstring)."""
        self.iac[is_orig] = 0
        if self.gap_ts is None:
            self.gap_ts = ts  # cleared when a new attempt starts cleanly (a user prompt, a user name)
        if is_orig:
            self.typed, self.skip = "", True
            self.expect = None  # the answer to the last prompt may be what was lost
        else:
            self.tail = ""

    def _server(self, text: str, ts: float) -> None:
        self.tail = (self.tail + text.replace("\0", ""))[-MAX_TAIL:]
        recent = self.tail.rstrip(" \t")
        if self.waiting:
            if _FAILED.search(self.tail):
                self._report(False)
            elif _SUCCESS.search(self.tail.replace("\r", "")) and not _PASS_PROMPT.search(recent):
                self._report(True)
            elif _USER_PROMPT.search(recent):
                self._report(False)
        if _PASS_PROMPT.search(recent):
            if self.waiting:  # asked again without a verdict: the last password did not work
                self._report(None if self.gap_ts is not None else False)
            self.expect, self.typed, self.skip = "secret", "", False
        elif _USER_PROMPT.search(recent):
            self.expect, self.typed, self.skip = "user", "", False
            if self.user is None and not self.waiting:
                self.gap_ts = None

    def _typed(self, text: str, ts: float) -> None:
        for ch in text:
            if ch in "\r\n":
                if self.expect and not self.skip and (self.typed or ch == "\r"):
                    self._line(self.typed, ts)
                self.typed, self.skip = "", False
            elif ch in "\b\x7f":
                self.typed = self.typed[:-1]
            elif ch == "\x15":  # ^U erases the line
                self.typed = ""
            elif ch != "\0" and len(self.typed) < MAX_LINE:
                self.typed += ch

    def _line(self, line: str, ts: float) -> None:
        if self.expect == "user":
            if self.waiting:
                self._report(None)
            self.user, self.secret, self.login_ts = line, None, ts
            self.expect = None
            self.gap_ts = None
        elif self.expect == "secret":
            self.secret = line
            self.expect = None
            self.waiting = True
            self.tail = ""
            if self.user is None:
                self.login_ts = ts if self.gap_ts is None else self.gap_ts

    def _report(self, success: bool | None) -> None:
        self.out.credential(self.conn, ts=self.login_ts, protocol="Telnet", user=self.user,
                            secret=self.secret, success=success,
                            note=None if self.gap_ts is None else "bytes lost mid-login")
        self.gap_ts = None
        self.waiting = False
        self.user = self.secret = None
        self.tail = ""

    def end(self, ts: float) -> None:
        if self.waiting:
            self._report(None)
