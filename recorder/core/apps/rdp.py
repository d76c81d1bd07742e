"""RDP (MS-RDPBCGR) connection setup: Zeek's rdp.log and the user name of the cookie.

The client's first message (TPKT, X.224 Connection Request) carries ``Cookie: mstshash=NAME``
(the user name the client typed, often truncated) and the security protocols it offers; the
server's X.224 Connection Confirm picks one (``RDP``, ``SSL``, ``HYBRID`` = CredSSP, ...) or
refuses (``result`` names the failure). With standard RDP security the MCS Connect Initial that
follows is readable: the client core data (build, name, keyboard layout, desktop size, colour
depth, product id) and its channels; the server's MCS Connect Response gives the result and the
server security data (encryption method and level, certificate type and count).

When the server picks TLS or CredSSP the rest of the connection is TLS: the record is written
with ``result`` ``encrypted`` (as Zeek) and the connection is handed to the TLS parser
(``redetect``), which writes ssl.log. The cookie's user name is also written to credentials as
an account seen (RDP sends no password in the cookie; the login itself is encrypted).
"""

from __future__ import annotations

from typing import ClassVar

from recorder.core.apps.base import CONN_ID, Conn, LogFields, Output, Parser
from recorder.core.apps.littleendian import u16, u32

MAX_PDU = 1 << 16
PROTOCOLS = {0: "RDP", 1: "SSL", 2: "HYBRID", 4: "RDSTLS", 8: "HYBRID_EX"}
FAILURES = {1: "SSL_REQUIRED_BY_SERVER", 2: "SSL_NOT_ALLOWED_BY_SERVER", 3: "SSL_CERT_NOT_ON_SERVER",
            4: "INCONSISTENT_FLAGS", 5: "HYBRID_REQUIRED_BY_SERVER", 6: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}
RESULTS = {0: "Success", 1: "Domain merging", 2: "Domain not hierarchical", 3: "No such channel",
           4: "No such domain", 5: "No such user", 6: "Not admitted", 7: "Other user ID",
           8: "Parameters unacceptable", 9: "Token not available", 10: "Token not possessed",
           11: "Too many channels", 12: "Too many tokens", 13: "Too many users", 14: "Unspecified failure",
           15: "User rejected"}
ENCRYPTION_METHODS = {0: "None", 1: "40bit", 2: "128bit", 8: "56bit", 0x10: "FIPS"}
ENCRYPTION_LEVELS = {0: "None", 1: "Low", 2: "Client compatible", 3: "High", 4: "FIPS"}
CERT_TYPES = {1: "RSA", 2: "X.509"}
HIGH_COLOR_DEPTHS = {4: "4bit", 8: "8bit", 15: "15bit", 16: "16bit", 24: "24bit"}
WANT_32BPP = 0x0002  # earlyCapabilityFlags
BUILDS = {419: "RDP 4.0", 2195: "RDP 5.0", 2221: "RDP 5.0", 2600: "RDP 5.1", 3790: "RDP 5.2",
          6000: "RDP 6.0", 6001: "RDP 6.1", 6002: "RDP 6.2", 7600: "RDP 7.0", 7601: "RDP 7.1",
          9200: "RDP 8.0", 9600: "RDP 8.1", 25189: "RDP 8.0 (Mac)", 25282: "RDP 8.0 (Mac)"}
KEYBOARD_LAYOUTS = {
    0x0401: "Arabic - Saudi Arabia", 0x0404: "Chinese - Taiwan", 0x0405: "Czech - Czech Republic",
    0x0406: "Danish - Denmark", 0x0407: "German - Germany", 0x0408: "Greek - Greece",
    0x0409: "English - United States", 0x040a: "Spanish - Traditional Sort", 0x040b: "Finnish - Finland",
    0x040c: "French - France", 0x040d: "Hebrew - Israel", 0x040e: "Hungarian - Hungary",
    0x040f: "Icelandic - Iceland", 0x0410: "Italian - Italy", 0x0411: "Japanese - Japan",
    0x0412: "Korean - Korea", 0x0413: "Dutch - Netherlands", 0x0414: "Norwegian (Bokmal) - Norway",
    0x0415: "Polish - Poland", 0x0416: "Portuguese - Brazil", 0x0418: "Romanian - Romania",
    0x0419: "Russian - Russia", 0x041a: "Croatian - Croatia", 0x041b: "Slovak - Slovakia",
    0x041d: "Swedish - Sweden", 0x041e: "Thai - Thailand", 0x041f: "Turkish - Turkey",
    0x0422: "Ukrainian - Ukraine", 0x0424: "Slovenian - Slovenia", 0x0425: "Estonian - Estonia",
    0x0426: "Latvian - Latvia", 0x0427: "Lithuanian - Lithuania", 0x042a: "Vietnamese - Viet Nam",
    0x0804: "Chinese - PRC", 0x0807: "German - Switzerland", 0x0809: "English - United Kingdom",
    0x080a: "Spanish - Mexico", 0x080c: "French - Belgium", 0x0813: "Dutch - Belgium",
    0x0816: "Portuguese - Portugal", 0x0c07: "German - Austria", 0x0c09: "English - Australia",
    0x0c0a: "Spanish - International Sort", 0x0c0c: "French - Canada", 0x1009: "English - Canada",
    0x100c: "French - Switzerland", 0x1409: "English - New Zealand", 0x1809: "English - Ireland",
}

RDP_LOG: LogFields = CONN_ID + (
    ("cookie", "string"), ("result", "string"), ("security_protocol", "string"),
    ("client_channels", "vector[string]"), ("keyboard_layout", "string"), ("client_build", "string"),
    ("client_name", "string"), ("client_dig_product_id", "string"), ("desktop_width", "count"),
    ("desktop_height", "count"), ("requested_color_depth", "string"), ("cert_type", "string"),
    ("cert_count", "count"), ("cert_permanent", "bool"), ("encryption_level", "string"),
    ("encryption_method", "string"))


def _wstr(raw: bytes) -> str | None:
    text = raw.decode("utf-16-le", "replace").split("\x00", 1)[0]
    return text or None


def _blocks(p: bytes, types: tuple[int, ...]) -> dict[int, bytes]:
    """GCC user data blocks (2-byte type, 2-byte length) of the given types found in ``p``."""
    out: dict[int, bytes] = {}
    for t in types:
        at = p.find(t.to_bytes(2, "little"))
        while at >= 0:
            length = u16(p, at + 2)
            if length >= 4 and at + length <= len(p):
                out[t] = p[at:at + length]
                break
            at = p.find(t.to_bytes(2, "little"), at + 1)
    return out


class RDP(Parser):
    service = "rdp"
    ports = frozenset({3389})
    logs: ClassVar[dict[str, LogFields]] = {"rdp": RDP_LOG}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.buf = {True: bytearray(), False: bytearray()}
        self.rec: dict = {"ts": None, "cookie": None, "result": None, "security_protocol": None,
                          "client_channels": None, "keyboard_layout": None, "client_build": None,
                          "client_name": None, "client_dig_product_id": None, "desktop_width": None,
                          "desktop_height": None, "requested_color_depth": None, "cert_type": None,
                          "cert_count": None, "cert_permanent": None, "encryption_level": None,
                          "encryption_method": None}
        self.written = False
        self.malformed = 0

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        """A TPKT carrying an X.224 Connection Request (client) or Confirm (server) that is RDP's:
        on port 3389, or with a cookie or an RDP negotiation request/response (other ISO transport
        users such as S7comm on port 102 open with the same X.224 request)."""
        if not (len(data) >= 11 and data[0] == 3 and data[1] == 0 and int.from_bytes(data[2:4], "big") >= 11
                and data[5] in (0xE0, 0xD0) and data[4] >= 6):
            return False
        if conn.resp_p == 3389:
            return True
        end = min(int.from_bytes(data[2:4], "big"), len(data))
        if data[5] == 0xE0 and (data[11:19] == b"Cookie: " or (end >= 19 and data[end - 8] == 0x01
                                                              and data[end - 6:end - 4] == b"\x08\x00")):
            return True
        return data[5] == 0xD0 and end == 19 and data[11] in (0x02, 0x03) and data[13:15] == b"\x08\x00"

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.written:
            return
        if self.rec["ts"] is None:
            self.rec["ts"] = ts
        buf = self.buf[is_orig]
        buf += data
        while len(buf) >= 4 and not self.written:
            if buf[0] != 3:  # not TPKT: a fast-path PDU
                buf.clear()
                break
            length = int.from_bytes(buf[2:4], "big")
            if length < 7 or length > MAX_PDU:
                self.malformed += 1
                buf.clear()
                break
            if len(buf) < length:
                break
            self._tpkt(is_orig, bytes(buf[4:length]), ts)
            del buf[:length]

    def _tpkt(self, is_orig: bool, x224: bytes, ts: float) -> None:
        if len(x224) < 2:
            self.malformed += 1
            return
        code = x224[1] & 0xF0
        if code == 0xE0 and is_orig:
            self._connect_request(x224[7:])
        elif code == 0xD0 and not is_orig:
            self._connect_confirm(x224[7:], ts)
        elif code == 0xF0:
            payload = x224[3:]
            if payload[:2] == b"\x7f\x65" and is_orig:
                self._client_data(payload)
            elif payload[:2] == b"\x7f\x66" and not is_orig:
                self._server_data(payload)

    def _connect_request(self, rest: bytes) -> None:
        if rest.startswith(b"Cookie: mstshash="):
            end = rest.find(b"\r\n")
            cookie = rest[17:end if end >= 0 else len(rest)].decode("latin-1")
            self.rec["cookie"] = cookie
            if cookie.strip():
                self.out.credential(self.conn, ts=self.rec["ts"], protocol="RDP", user=cookie.strip(),
                                    secret=None, success=None, note="user name of the RDP cookie (mstshash)")

    def _connect_confirm(self, rest: bytes, ts: float) -> None:
        if len(rest) >= 8 and rest[0] == 0x02:  # RDP_NEG_RSP
            proto = u32(rest, 4)
            self.rec["security_protocol"] = PROTOCOLS.get(proto, f"unknown-{proto}")
            if proto != 0:  # TLS (or CredSSP over TLS) from the next byte on
                self._handover(ts)
        elif len(rest) >= 8 and rest[0] == 0x03:  # RDP_NEG_FAILURE
            code = u32(rest, 4)
            self.rec["result"] = FAILURES.get(code, f"unknown-{code}")
            self._write()
        else:
            self.rec["security_protocol"] = "RDP"

    def _client_data(self, p: bytes) -> None:
        blocks = _blocks(p, (0xC001, 0xC003))
        core = blocks.get(0xC001)
        if core is not None and len(core) >= 136:
            layout, build = u32(core, 16), u32(core, 20)
            self.rec.update(desktop_width=u16(core, 8), desktop_height=u16(core, 10),
                            keyboard_layout=KEYBOARD_LAYOUTS.get(layout, f"unknown-0x{layout:x}"),
                            client_build=BUILDS.get(build, f"RDP - {build}"),
                            client_name=_wstr(core[24:56]))
            if len(core) >= 146:
                depth = HIGH_COLOR_DEPTHS.get(u16(core, 140))
                if u16(core, 144) & WANT_32BPP:
                    depth = "32bit"
                self.rec["requested_color_depth"] = depth
            if len(core) >= 210:
                self.rec["client_dig_product_id"] = _wstr(core[146:210])
        net = blocks.get(0xC003)
        if net is not None and len(net) >= 8:
            n = min(u32(net, 4), (len(net) - 8) // 12)
            self.rec["client_channels"] = [net[8 + 12 * i:16 + 12 * i].split(b"\x00", 1)[0].decode("latin-1")
                                           for i in range(n)]

    def _server_data(self, p: bytes) -> None:
        if len(p) > 8:  # MCS Connect-Response: BER length, then result ENUMERATED
            pos = 2
            n = p[pos]
            pos += 1 + (n & 0x7F if n & 0x80 else 0)
            if p[pos:pos + 2] == b"\x0a\x01" and pos + 2 < len(p):
                self.rec["result"] = RESULTS.get(p[pos + 2], f"unknown-{p[pos + 2]}")
        sec = _blocks(p, (0x0C02,)).get(0x0C02)
        if sec is not None and len(sec) >= 12:
            method, level = u32(sec, 4), u32(sec, 8)
            self.rec["encryption_method"] = ENCRYPTION_METHODS.get(method, f"unknown-{method}")
            self.rec["encryption_level"] = ENCRYPTION_LEVELS.get(level, f"unknown-{level}")
            if len(sec) >= 28:
                rnd_len = u32(sec, 12)
                cert = sec[20 + rnd_len:]
                if len(cert) >= 4:
                    version = u32(cert, 0)
                    kind = version & 0x7FFFFFFF
                    self.rec["cert_type"] = CERT_TYPES.get(kind, f"unknown-{kind}")
                    self.rec["cert_permanent"] = not version & 0x80000000
                    self.rec["cert_count"] = u32(cert, 4) if kind == 2 and len(cert) >= 8 else None
        self._write()

    def _handover(self, ts: float) -> None:
        if self.rec["result"] is None:
            self.rec["result"] = "encrypted"
        self.redetect = True
        self._write()

    def _write(self) -> None:
        if self.written:
            return
        self.written = True
        self.wants_data = self.redetect
        self.out.log("rdp", dict(self.rec), self.conn)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        self.buf[is_orig].clear()

    def end(self, ts: float) -> None:
        if not self.written and self.rec["ts"] is not None:
            self._write()
