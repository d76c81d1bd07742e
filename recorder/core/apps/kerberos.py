"""Kerberos 5 (RFC 4120) AS and TGS exchanges: kerberos.log (Zeek's field subset) and credentials.

A minimal DER walker reads the request (AS-REQ [APPLICATION 10], TGS-REQ [12]: client name,
realm, service name from the KDC-REQ-BODY) and the reply (AS-REP [11], TGS-REP [13], KRB-ERROR
[30] with its error code). One record per request/reply pair; an AS exchange is also a
credential for ``user@REALM`` (no secret: the password never crosses the wire), successful on
AS-REP, failed on KRB-ERROR except KDC_ERR_PREAUTH_REQUIRED (25), the ordinary first round of a
pre-authenticated login, which is logged but not reported as a login attempt.
UDP port 88 carries one message per datagram; TCP (``KerberosTCP``) frames each with a 4-byte
big-endian length.
"""

from __future__ import annotations

import struct
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, Conn, LogFields, Output, Parser

MAX_MESSAGE = 1 << 16  # a larger TCP frame is not Kerberos we read
MAX_DEPTH = 12
PREAUTH_REQUIRED = 25
ERRORS = {
    0: "KDC_ERR_NONE", 1: "KDC_ERR_NAME_EXP", 2: "KDC_ERR_SERVICE_EXP", 3: "KDC_ERR_BAD_PVNO",
    4: "KDC_ERR_C_OLD_MAST_KVNO", 5: "KDC_ERR_S_OLD_MAST_KVNO", 6: "KDC_ERR_C_PRINCIPAL_UNKNOWN",
    7: "KDC_ERR_S_PRINCIPAL_UNKNOWN", 8: "KDC_ERR_PRINCIPAL_NOT_UNIQUE", 9: "KDC_ERR_NULL_KEY",
    10: "KDC_ERR_CANNOT_POSTDATE", 11: "KDC_ERR_NEVER_VALID", 12: "KDC_ERR_POLICY",
    13: "KDC_ERR_BADOPTION", 14: "KDC_ERR_ETYPE_NOSUPP", 15: "KDC_ERR_SUMTYPE_NOSUPP",
    16: "KDC_ERR_PADATA_TYPE_NOSUPP", 17: "KDC_ERR_TRTYPE_NOSUPP", 18: "KDC_ERR_CLIENT_REVOKED",
    19: "KDC_ERR_SERVICE_REVOKED", 20: "KDC_ERR_TGT_REVOKED", 21: "KDC_ERR_CLIENT_NOTYET",
    22: "KDC_ERR_SERVICE_NOTYET", 23: "KDC_ERR_KEY_EXPIRED", 24: "KDC_ERR_PREAUTH_FAILED",
    25: "KDC_ERR_PREAUTH_REQUIRED", 26: "KDC_ERR_SERVER_NOMATCH", 27: "KDC_ERR_MUST_USE_USER2USER",
    28: "KDC_ERR_PATH_NOT_ACCEPTED", 29: "KDC_ERR_SVC_UNAVAILABLE", 31: "KRB_AP_ERR_BAD_INTEGRITY",
    32: "KRB_AP_ERR_TKT_EXPIRED", 33: "KRB_AP_ERR_TKT_NYV", 34: "KRB_AP_ERR_REPEAT",
    35: "KRB_AP_ERR_NOT_US", 36: "KRB_AP_ERR_BADMATCH", 37: "KRB_AP_ERR_SKEW",
    41: "KRB_AP_ERR_MODIFIED", 52: "KRB_ERR_RESPONSE_TOO_BIG", 60: "KRB_ERR_GENERIC",
    68: "KDC_ERR_WRONG_REALM",
}


def der(data: bytes, pos: int = 0, limit: int | None = None) -> tuple[int, int, int, int] | None:
    """One DER header at ``pos`` within ``data[:limit]``: (tag byte, content start, content end,
    next pos) or None."""
    limit = len(data) if limit is None else min(limit, len(data))
    if pos + 2 > limit:
        return None
    tag = data[pos]
    if tag & 0x1F == 0x1F:  # multi-byte tag numbers are not used by Kerberos
        return None
    length = data[pos + 1]
    start = pos + 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 4 or start + n > limit:
            return None
        length = int.from_bytes(data[start:start + n], "big")
        start += n
    end = start + length
    if end > limit:
        return None
    return tag, start, end, end


def children(data: bytes, start: int, end: int) -> dict[int, tuple[int, int, int]]:
    """The context-tagged ([n]) elements of a SEQUENCE body: n -> (inner tag, start, end)."""
    out: dict[int, tuple[int, int, int]] = {}
    pos = start
    while pos < end:
        h = der(data, pos, end)
        if h is None:
            break
        tag, s, e, pos = h
        if tag & 0xE0 == 0xA0:  # context-specific, constructed
            inner = der(data, s, e)
            if inner is not None:
                out[tag & 0x1F] = (inner[0], inner[1], inner[2])
    return out


def _sequence_body(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    h = der(data, start, end)
    if h is None or h[0] != 0x30:
        return None
    return h[1], h[2]


def _string(data: bytes, el: tuple[int, int, int] | None) -> str | None:
    if el is None or el[0] not in (0x1B, 0x0C, 0x16, 0x04):
        return None
    return data[el[1]:el[2]].decode("utf-8", "replace")


def _int(data: bytes, el: tuple[int, int, int] | None) -> int | None:
    if el is None or el[0] != 0x02 or not 0 < el[2] - el[1] <= 8:
        return None
    return int.from_bytes(data[el[1]:el[2]], "big", signed=True)


def _principal(data: bytes, el: tuple[int, int, int] | None) -> str | None:
    """PrincipalName ::= SEQUENCE { name-type [0], name-string [1] SEQUENCE OF KerberosString }."""
    if el is None or el[0] != 0x30:
        return None
    names = children(data, el[1], el[2]).get(1)
    if names is None or names[0] != 0x30:
        return None
    parts, pos = [], names[1]
    while pos < names[2] and len(parts) < 16:
        h = der(data, pos, names[2])
        if h is None:
            break
        parts.append(data[h[1]:h[2]].decode("utf-8", "replace"))
        pos = h[3]
    return "/".join(parts) if parts else None


def parse_message(data: bytes) -> dict | None:
    """A Kerberos message -> {"type": "AS-REQ"|..., "client", "realm", "service", "error"} or None."""
    h = der(data, 0)
    if h is None or h[0] & 0xE0 != 0x60:
        return None
    app = h[0] & 0x1F
    kinds = {10: "AS-REQ", 12: "TGS-REQ", 11: "AS-REP", 13: "TGS-REP", 30: "KRB-ERROR"}
    if app not in kinds:
        return None
    body = _sequence_body(data, h[1], h[2])
    if body is None:
        return None
    f = children(data, *body)
    msg: dict = {"type": kinds[app], "client": None, "realm": None, "service": None, "error": None}
    if app in (10, 12):
        req = f.get(4)
        if req is None or req[0] != 0x30:
            return msg
        b = children(data, req[1], req[2])
        msg.update(client=_principal(data, b.get(1)), realm=_string(data, b.get(2)),
                   service=_principal(data, b.get(3)))
    elif app in (11, 13):
        msg.update(realm=_string(data, f.get(3)), client=_principal(data, f.get(4)))
    else:
        msg.update(error=_int(data, f.get(6)), realm=_string(data, f.get(7)) or _string(data, f.get(9)),
                   client=_principal(data, f.get(8)), service=_principal(data, f.get(10)))
    return msg


class Kerberos(Parser):
    service = "krb"
    transport = "udp"
    ports = frozenset({88})
    logs: ClassVar[dict[str, LogFields]] = {"kerberos": CONN_ID + (
        ("request_type", "string"), ("client", "string"),
        ("service", "string"), ("success", "bool"), ("error_msg", "string"))}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.request: dict | None = None

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        m = parse_message(data)
        return m is not None and m["type"] in ("AS-REQ", "TGS-REQ")

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        self._message(is_orig, data, ts)

    def _message(self, is_orig: bool, data: bytes, ts: float) -> None:
        msg = parse_message(data)
        if msg is None:
            return
        if msg["type"].endswith("-REQ"):
            if self.request is not None:
                self._finish(None, ts)
            msg["ts"] = ts
            self.request = msg
        elif self.request is not None or msg["type"] == "KRB-ERROR" or msg["type"].endswith("-REP"):
            self._finish(msg, ts)

    def _finish(self, reply: dict | None, ts: float) -> None:
        req, self.request = self.request, None
        base = req or reply or {}
        kind = (base.get("type") or "").split("-")[0] or None
        if reply is not None and reply["type"] != "KRB-ERROR":
            kind = reply["type"].split("-")[0]
        client = (req or {}).get("client") or (reply or {}).get("client")
        realm = (req or {}).get("realm") or (reply or {}).get("realm")
        success: bool | None = None
        error = None
        if reply is not None:
            success = reply["type"] != "KRB-ERROR"
            if not success:
                code = reply["error"]
                error = ERRORS.get(code, f"KRB_ERR_{code}") if code is not None else "KRB_ERROR"
        self.out.log("kerberos", {
            "ts": (req or {}).get("ts", ts), "request_type": kind,
            "client": f"{client}/{realm}" if client and realm else client,
            "service": (req or {}).get("service") or (reply or {}).get("service"),
            "success": success, "error_msg": error}, self.conn)
        if kind == "AS" and client and not (reply and reply.get("error") == PREAUTH_REQUIRED):
            self.out.credential(self.conn, ts=(req or {}).get("ts", ts), protocol="Kerberos",
                                user=f"{client}@{realm}" if realm else client, secret=None, success=success,
                                note=error)

    def end(self, ts: float) -> None:
        if self.request is not None:
            self._finish(None, ts)


def _request_start(data: bytes, n: int) -> bool:
    """Whether ``data`` begins an n-byte AS-REQ or TGS-REQ: [APPLICATION 10|12] whose DER length
    is n, a SEQUENCE, pvno [1] 5 and msg-type [2] 10|12 (the rest of the message is not here yet)."""
    if len(data) < 16 or data[0] not in (0x6A, 0x6C):
        return False
    length = data[1]
    start = 2
    if length & 0x80:
        k = length & 0x7F
        if not 0 < k <= 4:
            return False
        length = int.from_bytes(data[2:2 + k], "big")
        start += k
    if start + length != n or data[start] != 0x30:
        return False
    seq = data[start + 1]
    inner = start + 2 + (seq & 0x7F if seq & 0x80 else 0)
    return data[inner:inner + 5] == b"\xa1\x03\x02\x01\x05" and \
        data[inner + 5:inner + 10] == b"\xa2\x03\x02\x01" + bytes([data[0] & 0x1F])


class KerberosTCP(Kerberos):
    """Kerberos over TCP: each message prefixed by its 4-byte length (RFC 4120 7.2.2)."""

    service = "krb_tcp"
    transport = "tcp"

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: b"", False: b""}

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if len(data) < 6:
            return False
        (n,) = struct.unpack(">I", data[:4])
        if not 0 < n <= MAX_MESSAGE:
            return False
        if len(data) >= 4 + n:
            return Kerberos.detect(data[4:4 + n], is_orig, conn)
        return _request_start(data[4:], n)  # a long request (PKINIT's certificates) spans segments

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        buf = self.buf[is_orig] + data
        while len(buf) >= 4:
            (n,) = struct.unpack(">I", buf[:4])
            if n & 0x80000000 or n > MAX_MESSAGE:
                buf = b""  # reserved bit or absurd length: not framing we can follow
                break
            if len(buf) < 4 + n:
                break
            self._message(is_orig, buf[4:4 + n], ts)
            buf = buf[4 + n:]
        self.buf[is_orig] = buf

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        self.buf[is_orig] = b""


def ap_request(blob: bytes) -> tuple[str | None, str | None] | None:
    """(ticket realm, ticket service) of the first Kerberos AP-REQ ([APPLICATION 14]) inside
    ``blob`` (a GSS-API/SPNEGO token as SMB SESSION_SETUP carries it), or None."""
    pos = blob.find(b"\x6e")
    tries = 0
    while pos >= 0 and tries < 64:
        tries += 1
        h = der(blob, pos)
        if h is not None:
            seq = _sequence_body(blob, h[1], h[2])
            if seq is not None:
                f = children(blob, *seq)
                if _int(blob, f.get(0)) == 5 and _int(blob, f.get(1)) == 14 and f.get(3) is not None:
                    tkt = f[3]
                    if tkt[0] == 0x61:  # Ticket ::= [APPLICATION 1] SEQUENCE
                        body = _sequence_body(blob, tkt[1], tkt[2])
                        if body is not None:
                            t = children(blob, *body)
                            return _string(blob, t.get(1)), _principal(blob, t.get(2))
        pos = blob.find(b"\x6e", pos + 1)
    return None
