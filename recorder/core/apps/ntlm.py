"""NTLM (MS-NLMP) messages and Zeek's ntlm.log.

    authenticate_user(blob)  ->  "DOMAIN\\user", or None if ``blob`` is not a type 3 message
    parse(blob)              ->  the NTLM message starting at ``blob[0]`` as a dict, or None
    neg_state(blob)          ->  SPNEGO negState of a NegTokenResp (0 accepted, 1 incomplete, 2 rejected)
    NTLMLogins               ->  one connection's NTLM exchanges as ntlm.log records

Shared by the protocols that carry NTLM: HTTP (``Authorization: NTLM|Negotiate``), SMB
(SESSION_SETUP security blobs) and DCE-RPC (auth verifiers of bind, alter context and auth3).

ntlm.log as Zeek writes it (base/protocols/ntlm): the client's user, workstation (``hostname``)
and domain from the AUTHENTICATE message, the server's NetBIOS and DNS names and DNS tree name
from the CHALLENGE's target info, and ``success`` from the SPNEGO result that follows (unset when
none is seen). One difference: Zeek writes one record per connection; we write one per exchange
(a NEGOTIATE after a logged exchange starts a new record), so a second login on one connection
is not lost. Where SMB answers a login without SPNEGO result, its status gives ``success``.
"""

from __future__ import annotations

from typing import ClassVar

from recorder.core.apps.base import CONN_ID, Conn, LogFields, Output
from recorder.core.apps.littleendian import u16, u32

SIGNATURE = b"NTLMSSP\x00"
NEGOTIATE_UNICODE = 0x00000001
AV_NAMES = {1: "nb_computer_name", 2: "nb_domain_name", 3: "dns_computer_name", 4: "dns_domain_name",
            5: "dns_tree_name"}
MAX_AV_PAIRS = 64

NTLM_LOG: LogFields = CONN_ID + (
    ("username", "string"), ("hostname", "string"), ("domainname", "string"),
    ("server_nb_computer_name", "string"), ("server_dns_computer_name", "string"),
    ("server_tree_name", "string"), ("success", "bool"))


def _field(blob: bytes, off: int) -> bytes:
    """A security buffer (length, max length, offset) at ``off``: its bytes, or b"" if out of range."""
    if off + 8 > len(blob):
        return b""
    length, start = u16(blob, off), u32(blob, off + 4)
    return blob[start:start + length] if start + length <= len(blob) else b""


def _text(raw: bytes, unicode: bool) -> str | None:
    if not raw:
        return None
    return raw.decode("utf-16-le" if unicode else "latin-1", "replace")


def _av_pairs(info: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    for _ in range(MAX_AV_PAIRS):
        if pos + 4 > len(info):
            break
        av_id, av_len = u16(info, pos), u16(info, pos + 2)
        if av_id == 0:
            break
        value = info[pos + 4:pos + 4 + av_len]
        if av_id in AV_NAMES and value:
            out[AV_NAMES[av_id]] = value.decode("utf-16-le", "replace")
        pos += 4 + av_len
    return out


def parse(blob: bytes) -> dict | None:
    """The NTLM message at ``blob[0]``: {"type": 1|2|3, ...}; None if it is not one.

    Type 2 carries the target info names (``nb_computer_name``, ``dns_computer_name``,
    ``dns_tree_name``, ...); type 3 ``user``, ``domain`` and ``workstation`` (None when empty)."""
    if len(blob) < 12 or not blob.startswith(SIGNATURE):
        return None
    kind = u32(blob, 8)
    if kind == 1:
        return {"type": 1}
    if kind == 2:
        if len(blob) < 32:
            return None
        msg: dict = {"type": 2}
        if len(blob) >= 48:
            msg.update(_av_pairs(_field(blob, 40)))
        return msg
    if kind == 3:
        if len(blob) < 52:
            return None
        flags = u32(blob, 60) if len(blob) >= 64 else NEGOTIATE_UNICODE
        uni = bool(flags & NEGOTIATE_UNICODE)
        return {"type": 3, "domain": _text(_field(blob, 28), uni), "user": _text(_field(blob, 36), uni),
                "workstation": _text(_field(blob, 44), uni)}
    return None


def find(blob: bytes) -> dict | None:
    """The first NTLM message inside ``blob`` (raw, or wrapped in SPNEGO/GSS-API)."""
    at = blob.find(SIGNATURE)
    return parse(blob[at:]) if at >= 0 else None


def authenticate_user(blob: bytes) -> str | None:
    """DOMAIN\\user from an NTLM type 3 (AUTHENTICATE) message starting at ``blob[0]``."""
    msg = parse(blob)
    if msg is None or msg["type"] != 3 or not msg["user"]:
        return None
    return f"{msg['domain']}\\{msg['user']}" if msg["domain"] else msg["user"]


def neg_state(blob: bytes) -> int | None:
    """negState of an SPNEGO NegTokenResp ([1] SEQUENCE {negState [0] ENUMERATED ...}), or None."""
    from recorder.core.apps.kerberos import children, der

    h = der(blob, 0)
    if h is None or h[0] != 0xA1:
        return None
    seq = der(blob, h[1], h[2])
    if seq is None or seq[0] != 0x30:
        return None
    el = children(blob, seq[1], seq[2]).get(0)
    if el is None or el[0] != 0x0A or el[2] - el[1] != 1:
        return None
    return blob[el[1]]


class NTLMLogins:
    """The NTLM exchanges of one connection, written to ntlm.log (and, if ``credentials``, each
    AUTHENTICATE's account to credentials as an account seen: NTLM never shows the password)."""

    log_name: ClassVar[str] = "ntlm"

    def __init__(self, conn: Conn, out: Output, *, credentials: bool) -> None:
        self.conn = conn
        self.out = out
        self.credentials = credentials
        self.current: dict | None = None
        self.done = True

    def message(self, blob: bytes, ts: float) -> dict | None:
        """An NTLM message found in ``blob`` (any wrapping); returns it parsed."""
        msg = find(blob)
        if msg is None:
            return None
        if self.current is None or self.done:
            self.current = {"ts": ts, "username": None, "hostname": None, "domainname": None,
                            "server_nb_computer_name": None, "server_dns_computer_name": None,
                            "server_tree_name": None, "success": None}
            self.done = False
        rec = self.current
        if msg["type"] == 2:
            rec["server_nb_computer_name"] = msg.get("nb_computer_name")
            rec["server_dns_computer_name"] = msg.get("dns_computer_name")
            rec["server_tree_name"] = msg.get("dns_tree_name")
        elif msg["type"] == 3:
            rec.update(username=msg["user"], hostname=msg["workstation"], domainname=msg["domain"])
        return msg

    def result(self, success: bool | None, ts: float) -> None:
        """The outcome of the exchange (SPNEGO negState, or the carrying protocol's status)."""
        if self.current is None or self.done or success is None:
            return
        self.current["success"] = success
        self._write()

    def spnego(self, blob: bytes, ts: float) -> None:
        """A server's SPNEGO answer: accept-completed or reject ends the exchange."""
        state = neg_state(blob)
        if state is not None and state != 1:
            self.result(state == 0, ts)

    def end(self, ts: float) -> None:
        if self.current is not None and not self.done:
            self._write()

    def _write(self) -> None:
        rec = self.current
        self.done = True
        if rec is None:
            return
        self.out.log(self.log_name, dict(rec), self.conn)
        if self.credentials and rec["username"]:
            user = f"{rec['domainname']}\\{rec['username']}" if rec["domainname"] else rec["username"]
            self.out.credential(self.conn, ts=rec["ts"], protocol="NTLM", user=user, secret=None,
                                success=rec["success"])
