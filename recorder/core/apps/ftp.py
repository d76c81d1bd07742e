"""FTP control channel (ftp.log with Zeek's meaning) and the data channels it announces.

Zeek's model, kept here: every command is queued as pending; each reply is matched to the pending
command that best fits its code (``FTP::get_pending_cmd``); a command is written when the next
command arrives, when a reply comes while several commands are pending, or when the connection
ends. Only ``LOGGED_COMMANDS`` reach ftp.log (as Zeek's ``FTP::logged_commands``); the user is
carried on every record; the password is shown only for guest users, else ``<hidden>``.
File arguments become ``ftp://<resp_h><cwd-joined path>`` (``FTP::build_url_ftp``).

PORT/EPRT and the PASV (227) / EPSV (229) replies announce a data channel through
``out.expect``; the data connection is then handed to :class:`FTPData`, which hands its bytes to
``out.file`` when it ends. The two share one mutable ``session`` dict (in the expect context),
so the data channel learns the file name of a RETR/STOR sent after the channel was announced and
the control channel learns the data channel's fuid.
"""

from __future__ import annotations

import re
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser

LOGGED_COMMANDS = frozenset({"APPE", "DELE", "RETR", "STOR", "STOU", "ACCT", "PORT", "PASV",
                             "EPRT", "EPSV"})
GUEST_IDS = frozenset({"anonymous", "ftp", "ftpuser", "guest"})
FILE_CMDS = frozenset({"APPE", "CWD", "DELE", "MKD", "RETR", "RMD", "RNFR", "RNTO", "STOR", "STOU",
                       "REST", "SIZE", "MDTM"})
TRANSFER_CMDS = frozenset({"RETR", "STOR", "STOU", "APPE"})
LISTING_CMDS = frozenset({"LIST", "NLST", "MLSD"})  # their data channel carries a directory listing
MAX_PENDING = 20  # FTP::max_pending_commands
MAX_FIELD = 4096  # FTP::max_arg_length / max_reply_msg_length
MAX_USER = 128
MAX_FILE = 64 << 20  # bytes of one data-channel transfer kept for out.file

# FTP::cmd_reply_code: the reply codes each command may get (RFC 959 and extensions).
_CODES = {
    "<init>": (120, 220, 421), "USER": (230, 331, 332, 421, 530, 500, 501),
    "PASS": (230, 202, 332, 421, 530, 500, 501, 503), "ACCT": (230, 202, 421, 530, 500, 501, 503),
    "CWD": (250, 421, 500, 501, 502, 530, 550), "CDUP": (200, 250, 421, 500, 501, 502, 530, 550),
    "SMNT": (202, 250, 421, 500, 501, 502, 530, 550), "REIN": (120, 220, 421, 500, 502),
    "QUIT": (221, 500), "PORT": (200, 421, 500, 501, 530), "PASV": (227, 421, 500, 501, 502, 530),
    "MODE": (200, 421, 500, 501, 502, 504, 530), "TYPE": (200, 421, 500, 501, 504, 530),
    "STRU": (200, 421, 500, 501, 504, 530), "ALLO": (200, 202, 421, 500, 501, 504, 530),
    "REST": (200, 350, 421, 500, 501, 502, 530),
    "STOR": (110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550),
    "STOU": (110, 125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 452, 553, 500, 501, 530, 550),
    "RETR": (110, 125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 530, 550),
    "LIST": (125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550),
    "NLST": (125, 150, 226, 250, 421, 425, 426, 451, 450, 500, 501, 502, 530, 550),
    "APPE": (125, 150, 226, 250, 421, 425, 426, 451, 551, 552, 532, 450, 550, 452, 553, 500, 501, 502, 530),
    "RNFR": (350, 421, 450, 550, 500, 501, 502, 530), "RNTO": (250, 421, 532, 553, 500, 501, 502, 503, 530),
    "DELE": (250, 421, 450, 550, 500, 501, 502, 530), "RMD": (250, 421, 500, 501, 502, 530, 550),
    "MKD": (257, 421, 500, 501, 502, 530, 550), "PWD": (257, 421, 500, 501, 502, 550),
    "ABOR": (225, 226, 421, 500, 501, 502), "SYST": (215, 421, 500, 501, 502, 530),
    "STAT": (211, 212, 213, 421, 450, 500, 501, 502, 530), "HELP": (200, 211, 214, 421, 500, 501, 502),
    "SITE": (200, 202, 214, 500, 501, 502, 530), "NOOP": (200, 421, 500), "LPRT": (500, 501, 521),
    "FEAT": (211, 500, 502), "OPTS": (200, 451, 501), "EPSV": (229, 500, 501),
    "EPRT": (200, 500, 501, 522), "SIZE": (213, 500, 501, 550), "MDTM": (213, 500, 501, 550),
    "MLST": (150, 226, 250, 500, 501, 550), "MLSD": (150, 226, 250, 500, 501, 550),
    "CLNT": (200, 500), "MACB": (200, 500, 550),
}
KNOWN_COMMANDS = frozenset(_CODES) | TRANSFER_CMDS | LISTING_CMDS | frozenset({
    "USER", "PASS", "ACCT", "AUTH", "PBSZ", "PROT", "FEAT", "SYST", "PWD", "XPWD", "XCWD", "XCUP", "XMKD", "XRMD",
    "NOOP", "HELP", "STAT", "SITE", "SIZE", "MDTM", "MKD", "RMD", "DELE", "RNFR", "RNTO", "ABOR", "OPTS", "EPSV",
    "EPRT", "LPRT", "LPSV", "MLST", "CLNT", "MACB", "CCC", "ADAT", "MIC", "CONF", "ENC", "LANG", "HOST"})
_REPLY = re.compile(rb"^(\d{3})([ -])(.*)$", re.S)
_LOOKS_FINAL = re.compile(rb"^[1-9][0-9]{2} [\x20-\x7e]{10}")
_PASV = re.compile(r"(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3}),(\d{1,3})")
_EPSV = re.compile(r"\((.)\1\1(\d{1,5})\1\)")
_NUMBER = re.compile(r"\d+")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def compress_path(path: str) -> str:
    """Zeek's ``compress_path``: drop ``./`` and empty components, fold ``dir/..``."""
    absolute = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == ".." and out and out[-1] != "..":
            out.pop()
        elif part == ".." and absolute and not out:
            continue
        else:
            out.append(part)
    joined = "/".join(out)
    return "/" + joined if absolute else joined


def build_path_compressed(cwd: str, arg: str) -> str:
    return compress_path(arg if arg.startswith("/") else f"{cwd}/{arg}")


def addr_to_uri(addr: str) -> str:
    return f"[{addr}]" if ":" in addr else addr


def parse_port(arg: str) -> tuple[str, int] | None:
    """PORT h1,h2,h3,h4,p1,p2 -> (addr, port)."""
    m = _PASV.search(arg)
    if not m:
        return None
    n = [int(x) for x in m.groups()]
    if any(x > 255 for x in n):
        return None
    return ".".join(str(x) for x in n[:4]), n[4] * 256 + n[5]


def parse_eprt(arg: str) -> tuple[str, int] | None:
    """EPRT |proto|addr|port| -> (addr, port)."""
    if len(arg) < 4:
        return None
    parts = arg.split(arg[0])
    if len(parts) < 5 or not re.fullmatch(r"[0-9]{1,5}", parts[3]) or not parts[2]:
        return None
    port = int(parts[3])
    return (parts[2], port) if 0 < port < 65536 else None


class FTP(Parser):
    service = "ftp"
    ports = frozenset({21, 2811})
    logs: ClassVar[dict[str, LogFields]] = {"ftp": CONN_ID + (
        ("user", "string"), ("password", "string"),
        ("command", "string"), ("arg", "string"), ("mime_type", "string"), ("file_size", "count"),
        ("reply_code", "count"), ("reply_msg", "string"), ("data_channel.passive", "bool"),
        ("data_channel.orig_h", "addr"), ("data_channel.resp_h", "addr"),
        ("data_channel.resp_p", "port"), ("fuid", "string"))}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: b"", False: b""}
        self.seq = 0
        self.pending: dict[int, dict] = {}
        self._add_pending("<init>", "", conn.start)
        self.cmdarg: dict | None = None
        self.reply_code: int | None = None
        self.reply_msg: str | None = None
        self.multi: int | None = None  # code of the multi-line reply in progress
        self.user: str | None = None
        self.password: str | None = None
        self.cwd = "."
        self.file_size: int | None = None
        self.data_channel: dict | None = None
        self.session: dict = {}  # shared with the data channels announced (see module doc)
        self.login: tuple[str | None, str, float] | None = None  # (user, secret, ts) awaiting a reply
        self.auth_tls = False
        self.resync = {True: False, False: False}  # after a gap: wait for a line that parses

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        line = data.split(b"\n", 1)[0].upper()
        if is_orig:  # USER/AUTH are POP3 words too: not on the POP3 port
            return conn.resp_p != 110 and (line[:5] in (b"USER ", b"AUTH ") or line.rstrip() == b"FEAT")
        if not re.match(rb"220[ -]", line):
            return False
        return b"SMTP" not in line or b"FTP" in line

    # -- stream handling -------------------------------------------------------------------

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig] + data
        pos = 0
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0:
                break
            line, pos = buf[pos:nl].rstrip(b"\r"), nl + 1
            if self.resync[is_orig]:
                if not self._parses(is_orig, line):
                    continue  # the tail of a line whose start was lost
                self.resync[is_orig] = False
            if is_orig:
                self._request(line, ts)
            else:
                self._reply_line(line, ts)
            if self.redetect:
                break
        self.buf[is_orig] = buf[pos:][-MAX_BUFFER:]

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        """Bytes lost: resynchronise at the next line that parses as a command (client) or a
        reply (server), as Zeek's FTP analyzer goes on after a content gap; commands and replies
        are paired again by ``_pending_for`` (codes and text), so a lost one does not shift them."""
        self.buf[is_orig] = b""
        self.resync[is_orig] = True
        if not is_orig:
            self.multi = None

    @staticmethod
    def _parses(is_orig: bool, line: bytes) -> bool:
        if not is_orig:
            return _REPLY.match(line) is not None
        word = line.split(b" ", 1)[0].strip().upper()
        return word.decode("latin-1") in KNOWN_COMMANDS

    def end(self, ts: float) -> None:
        for cmd in list(self.pending.values()):
            self.cmdarg = cmd
            self._message()
        self.pending.clear()
        if self.login is not None:
            user, secret, lts = self.login
            self.out.credential(self.conn, ts=lts, protocol="FTP", user=user, secret=secret, success=None)
            self.login = None

    # -- Zeek's ftp_request / ftp_reply ------------------------------------------------------

    def _add_pending(self, cmd: str, arg: str, ts: float) -> None:
        self.seq += 1
        self.pending[self.seq] = {"seq": self.seq, "cmd": cmd, "arg": arg, "ts": ts, "cwd_consumed": False}

    def _request(self, line: bytes, ts: float) -> None:
        text = _text(line).strip()
        if not text:
            return
        cmd, _, arg = text.partition(" ")
        cmd = cmd.upper()
        arg = arg.strip()
        if self.cmdarg is not None and self.reply_code is not None:
            if self.pending.pop(self.cmdarg["seq"], None) is not None:
                self._message()
        if len(self.pending) < MAX_PENDING:
            self._add_pending(cmd, arg, ts)
        if cmd == "USER":
            self.user = arg[:MAX_USER]
        elif cmd == "PASS":
            self.password = arg[:MAX_USER]
            self.login = (self.user, arg, ts)
        elif cmd in ("PORT", "EPRT"):
            hp = parse_port(arg) if cmd == "PORT" else parse_eprt(arg)
            if hp:
                self._expect(passive=False, orig_h=self.conn.resp_h, resp_h=hp[0], resp_p=hp[1], ts=ts)
        elif cmd in TRANSFER_CMDS:
            self.session["command"] = cmd
            self.session["filename"] = arg.rsplit("/", 1)[-1] or None
            self.session["path"] = build_path_compressed(self.cwd, arg)
        elif cmd in LISTING_CMDS:
            self.session["command"] = cmd

    def _reply_line(self, line: bytes, ts: float) -> None:
        m = _REPLY.match(line)
        if self.multi is not None:
            if m and int(m.group(1)) == self.multi and m.group(2) == b" ":
                self.multi = None
            elif m and m.group(2) == b" " and _LOOKS_FINAL.match(line):
                self.multi = None  # a multi-line reply never closed with its own code
            else:
                return
        elif not m:
            return
        elif m.group(2) == b"-":
            self.multi = int(m.group(1))
            return
        if m is None:
            return
        self._reply(int(m.group(1)), _text(m.group(3)).strip()[:MAX_FIELD], ts)

    def _pending_for(self, code: int, msg: str) -> dict:
        best, best_score = None, -1
        for seq in sorted(self.pending):
            cmd = self.pending[seq]
            score = 100 if code == 500 or code in _CODES.get(cmd["cmd"], ()) else 0
            if cmd["cmd"] in msg:
                score += 20
            if cmd["arg"] in msg:  # Zeek's strstr finds "" too
                score += 10
            if score > best_score:
                best, best_score = cmd, score
        return best or {"seq": -1, "cmd": "<missing>", "arg": "", "ts": self.conn.start, "cwd_consumed": True}

    def _reply(self, code: int, msg: str, ts: float) -> None:
        cmdarg = self.cmdarg = self._pending_for(code, msg)
        self.reply_code, self.reply_msg = code, msg
        cmd = cmdarg["cmd"]
        if (code == 150 and cmd == "RETR") or (code == 213 and cmd == "SIZE"):
            nums = _NUMBER.findall(msg)
            self.file_size = int(nums[-1]) if nums and len(nums[-1]) < 20 else None
        elif code in (227, 229) and cmd in ("PASV", "EPSV"):
            hp: tuple[str, int] | None = None
            if code == 227:
                hp = parse_port(msg)
            else:
                m = _EPSV.search(msg)
                if m and 0 < int(m.group(2)) < 65536:
                    hp = (self.conn.resp_h, int(m.group(2)))
            if hp:
                self._expect(passive=True, orig_h=self.conn.orig_h, resp_h=hp[0], resp_p=hp[1], ts=ts)
        if not cmdarg["cwd_consumed"]:
            if cmd == "CWD" and code == 250:
                self.cwd = build_path_compressed(self.cwd, cmdarg["arg"])
                cmdarg["cwd_consumed"] = True
            elif cmd == "CDUP" and code in (200, 250):
                self.cwd = compress_path(self.cwd + "/..") or "."
                cmdarg["cwd_consumed"] = True
            elif cmd in ("PWD", "XPWD") and code == 257:
                m = re.search(r'"((?:[^"]|"")*)"', msg)
                if m:
                    self.cwd = m.group(1).replace('""', '"')
                cmdarg["cwd_consumed"] = True
        if cmd == "PASS" and self.login is not None and code >= 200:
            if code in (230, 202, 530) or code >= 400:
                user, secret, lts = self.login
                self.out.credential(self.conn, ts=lts, protocol="FTP", user=user, secret=secret,
                                    success=code in (230, 202))
                self.login = None
        elif cmd == "AUTH" and code == 234:
            self.auth_tls = True
            if self.pending.pop(cmdarg["seq"], None) is not None:
                self._message()
            self.redetect = True
            return
        if len(self.pending) > 1:
            self.pending.pop(cmdarg["seq"], None)
            self._message()

    def _expect(self, *, passive: bool, orig_h: str, resp_h: str, resp_p: int, ts: float) -> None:
        self.data_channel = {"passive": passive, "orig_h": orig_h, "resp_h": resp_h, "resp_p": resp_p}
        self.session = {"control_uid": self.conn.uid}
        ctx = {"command": None, "filename": None, "control_uid": self.conn.uid, "session": self.session}
        self.out.expect(self.conn, orig_h=orig_h, resp_h=resp_h, resp_p=resp_p, parser=FTPData,
                        context=ctx, ts=ts)

    def _message(self) -> None:
        """Zeek's ``ftp_message``: write the current command/reply if it is a logged command."""
        c = self.cmdarg
        if c is None:
            return
        cmd, arg = c["cmd"], c["arg"]
        if cmd in FILE_CMDS:
            path = build_path_compressed(self.cwd, arg)
            if not path.startswith("/"):
                path = "/" + path
            arg = f"ftp://{addr_to_uri(self.conn.resp_h)}{path}"
        hide = (self.user or "").lower() not in GUEST_IDS
        if cmd == "PASS" and hide:
            arg = "<hidden>"
        if cmd in LOGGED_COMMANDS:
            dc = self.data_channel or {}
            fuid = self.session.get("fuid") if cmd in TRANSFER_CMDS else None
            self.out.log("ftp", {
                "ts": c["ts"], "user": self.user,
                "password": ("<hidden>" if hide else self.password) if self.password is not None else None,
                "command": cmd, "arg": arg[:MAX_FIELD] or None,
                "mime_type": self.session.get("mime_type") if fuid else None,
                "file_size": self.file_size, "reply_code": self.reply_code, "reply_msg": self.reply_msg,
                "data_channel.passive": dc.get("passive"), "data_channel.orig_h": dc.get("orig_h"),
                "data_channel.resp_h": dc.get("resp_h"), "data_channel.resp_p": dc.get("resp_p"),
                "fuid": fuid,
            }, self.conn)
        self.file_size = None
        self.data_channel = None


class FTPData(Parser):
    """A data connection announced on an FTP control channel: its bytes are one file."""

    service = "ftp-data"

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.parts: dict[bool, list[bytes]] = {True: [], False: []}
        self.size = {True: 0, False: 0}
        self.missing = {True: 0, False: 0}
        self.first_ts: float | None = None
        self.done = False

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.first_ts is None:
            self.first_ts = ts
        room = MAX_FILE - self.size[is_orig]
        if room > 0:
            self.parts[is_orig].append(data[:room])
        self.size[is_orig] += min(len(data), max(room, 0))
        self.missing[is_orig] += max(len(data) - max(room, 0), 0)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        self.missing[is_orig] += max(nbytes, 0)

    def end(self, ts: float) -> None:
        if self.done:
            return
        self.done = True
        side = self.size[True] + self.missing[True] > self.size[False] + self.missing[False]
        if not self.size[side]:
            return
        ctx = self.conn_context
        session = ctx.get("session") if isinstance(ctx.get("session"), dict) else {}
        name = session.get("filename") or ctx.get("filename")
        fuid = self.out.file(self.conn, ts=self.first_ts if self.first_ts is not None else ts,
                             data=b"".join(self.parts[side]), is_orig=side, source="FTP_DATA",
                             filename=str(name).rsplit("/", 1)[-1] if name else None,
                             missing_bytes=self.missing[side])
        session["fuid"] = fuid
