"""SSH: ssh.log with Zeek's meaning, plus the HASSH client and server fingerprints.

The parser reads each side's identification line ("SSH-2.0-OpenSSH_9.7"; a server may send other
lines first, RFC 4253 4.2), then the unencrypted binary packets up to NEWKEYS: both KEXINITs
give the negotiated algorithms (RFC 4253 7.1: the first client algorithm the server also offers,
per direction; when the two directions differ the field reads "To server: X, to client: Y" as in
Zeek) and the HASSH fingerprints; the key exchange reply (read only once both KEXINITs fixed the
key exchange method, as Zeek does) gives the server's host key, logged as Zeek logs
``host_key_fingerprint``: "SHA256:" and the first 32 characters of the base64 SHA-256 of the key
blob (OpenSSH prints 43; the 32 are a prefix of them).

``auth_success``/``auth_attempts`` follow Zeek's size heuristic on encrypted segments (its
``SSH_Analyzer::ProcessEncrypted``): once the client has sent encrypted data, the server's first
encrypted segment is the service accept; a later one 16 bytes shorter is an authentication
success; the first other one (after skipping one pre-auth banner) sets the size of a failure, and
each further segment of that size is one more failed attempt. Zeek applies it to each TCP
segment's payload; here to each ``data`` call, which is one segment when the dispatcher hands
segments over as they arrive.

``direction`` is OUTBOUND when only the originator is in the private address space, INBOUND when
only the responder is (Zeek's ``Site::is_local_addr`` with its default private ranges).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from typing import ClassVar

from recorder.core.apps.base import CONN_ID, Conn, LogFields, Output, Parser

_MAX_BANNER_BUFFER = 64 * 1024  # pre-banner lines are allowed, but not forever
_MAX_PACKET = 256 * 1024  # RFC 4253 6.1 requires 35000; OpenSSH accepts 256 KiB
_PRIVATE = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "100.64.0.0/10",
    "fc00::/7", "fe80::/10", "::1/128"))
_KEXINIT_FIELDS = ("kex", "host_key", "enc_c2s", "enc_s2c", "mac_c2s", "mac_s2c", "cmp_c2s", "cmp_s2c")


def _is_local(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in _PRIVATE)


def parse_kexinit(payload: bytes) -> dict[str, list[str]] | None:
    """The algorithm name-lists of an SSH_MSG_KEXINIT payload (type byte first), or None."""
    if len(payload) < 17 or payload[0] != 20:
        return None
    pos = 17  # type, 16-byte cookie
    lists: dict[str, list[str]] = {}
    for name in (*_KEXINIT_FIELDS, "lang_c2s", "lang_s2c"):
        if pos + 4 > len(payload):
            return None
        n = int.from_bytes(payload[pos:pos + 4], "big")
        if pos + 4 + n > len(payload):
            return None
        text = payload[pos + 4:pos + 4 + n].decode("latin-1")
        lists[name] = [a for a in text.split(",") if a]
        pos += 4 + n
    return lists


def negotiate(client: list[str], server: list[str]) -> str | None:
    """RFC 4253 7.1: the first algorithm of the client's list that the server also supports."""
    offered = set(server)
    for alg in client:
        if alg in offered:
            return alg
    return None


def hassh(lists: dict[str, list[str]], *, server: bool) -> str:
    """HASSH (client: kex;enc_c2s;mac_c2s;cmp_c2s) or HASSHServer (the s2c lists), MD5 hex."""
    d = "s2c" if server else "c2s"
    text = ";".join(",".join(lists[k]) for k in ("kex", f"enc_{d}", f"mac_{d}", f"cmp_{d}"))
    return hashlib.md5(text.encode()).hexdigest()


def _major(banner: str) -> str:
    """'1', '1.99' or '2' (or '') from an identification line."""
    proto = banner[4:].split("-", 1)[0]
    if proto == "1.99":
        return "1.99"
    return proto.split(".", 1)[0]


class _Side:
    __slots__ = ("buf", "banner", "encrypted", "dead")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.banner: str | None = None
        self.encrypted = False  # sent NEWKEYS: the rest is ciphertext
        self.dead = False


class SSH(Parser):
    service = "ssh"
    transport = "tcp"
    ports = frozenset({22})
    logs: ClassVar[dict[str, LogFields]] = {"ssh": CONN_ID + (
        ("version", "count"), ("auth_success", "bool"),
        ("auth_attempts", "count"), ("direction", "enum"), ("client", "string"), ("server", "string"),
        ("cipher_alg", "string"), ("mac_alg", "string"), ("compression_alg", "string"),
        ("kex_alg", "string"), ("host_key_alg", "string"), ("host_key_fingerprint", "string"),
        ("hassh", "string"), ("hasshServer", "string"),
    )}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.sides = {True: _Side(), False: _Side()}
        self.ts: float | None = None
        self.kexinit: dict[bool, dict[str, list[str]]] = {}
        self.rec: dict = {}
        self.auth_success: bool | None = None
        self.auth_attempts = 0
        self.service_accept_size: int | None = None
        self.failure_size: int | None = None
        self.skipped_banner = False
        self.client_encrypted_seen = False
        self.auth_decided = False
        self.logged = False

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if data.startswith(b"SSH-"):
            return True
        if is_orig or not data[:1].isascii():
            return False
        # a server may send other lines before its identification line
        for line in bytes(data[:4096]).split(b"\n")[1:]:
            if line.startswith(b"SSH-") and len(line) > 5:
                return True
        return False

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        side = self.sides[is_orig]
        if self.logged or side.dead or not data:
            return
        if self.ts is None:
            self.ts = ts
        if side.encrypted:
            self._encrypted(is_orig, len(data))
            return
        side.buf += data
        try:
            if side.banner is None and not self._banner(is_orig, side, ts):
                return
            self._packets(is_orig, side)
        except (ValueError, IndexError):
            side.dead = True
            side.buf.clear()

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        side = self.sides[is_orig]
        if not side.encrypted:
            side.dead = True
            side.buf.clear()

    def end(self, ts: float) -> None:
        if not self.logged and (self.sides[True].banner or self.sides[False].banner):
            self._log()

    # -- identification and binary packets ------------------------------------------------
    def _banner(self, is_orig: bool, side: _Side, ts: float) -> bool:
        buf = side.buf
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > _MAX_BANNER_BUFFER:
                    side.dead = True
                    buf.clear()
                return False
            line = bytes(buf[:nl]).rstrip(b"\r")
            del buf[:nl + 1]
            if line.startswith(b"SSH-"):
                side.banner = line.decode("latin-1")
                self.rec["client" if is_orig else "server"] = side.banner
                return True

    def _packets(self, is_orig: bool, side: _Side) -> None:
        if _major(side.banner or "") == "1":
            side.dead = True  # SSH-1 binary packets are not parsed
            side.buf.clear()
            return
        buf = side.buf
        pos = 0
        while len(buf) - pos >= 5 and not side.encrypted:
            length = int.from_bytes(buf[pos:pos + 4], "big")
            if length < 5 or length > _MAX_PACKET:
                side.dead = True
                break
            if len(buf) - pos < 4 + length:
                break
            padding = buf[pos + 4]
            payload = bytes(buf[pos + 5:pos + 4 + length - padding]) if padding < length else b""
            pos += 4 + length
            self._message(is_orig, side, payload)
        del buf[:pos]
        if side.encrypted:
            if buf:  # the rest of this segment is already ciphertext
                self._encrypted(is_orig, len(buf))
            buf.clear()

    def _message(self, is_orig: bool, side: _Side, payload: bytes) -> None:
        if not payload:
            return
        mtype = payload[0]
        if mtype == 20:
            lists = parse_kexinit(payload)
            if lists is not None and is_orig not in self.kexinit:
                self.kexinit[is_orig] = lists
                self.rec["hasshServer" if not is_orig else "hassh"] = hassh(lists, server=not is_orig)
                if len(self.kexinit) == 2:
                    self._negotiate()
        elif mtype == 21:
            side.encrypted = True
        elif not is_orig and mtype in (31, 33) and self.rec.get("kex_alg") and "host_key_fingerprint" not in self.rec:
            gex = self.rec["kex_alg"].startswith("diffie-hellman-group-exchange")
            if mtype == (33 if gex else 31) and len(payload) >= 5:
                n = int.from_bytes(payload[1:5], "big")
                if 0 < n <= len(payload) - 5:
                    digest = hashlib.sha256(payload[5:5 + n]).digest()
                    self.rec["host_key_fingerprint"] = "SHA256:" + base64.b64encode(digest).decode()[:32]

    def _negotiate(self) -> None:
        c, s = self.kexinit[True], self.kexinit[False]

        def both(kind: str) -> str | None:
            to_server = negotiate(c[f"{kind}_c2s"], s[f"{kind}_c2s"])
            to_client = negotiate(c[f"{kind}_s2c"], s[f"{kind}_s2c"])
            if to_server == to_client:
                return to_server
            return f"To server: {to_server}, to client: {to_client}"

        self.rec["kex_alg"] = negotiate(c["kex"], s["kex"])
        self.rec["host_key_alg"] = negotiate(c["host_key"], s["host_key"])
        self.rec["cipher_alg"] = both("enc")
        self.rec["mac_alg"] = both("mac")
        self.rec["compression_alg"] = both("cmp")

    # -- authentication heuristic ----------------------------------------------------------
    def _encrypted(self, is_orig: bool, size: int) -> None:
        if self.auth_decided or self.version() != 2:
            return
        if is_orig:
            self.client_encrypted_seen = True
            return
        if not self.client_encrypted_seen:
            return
        if self.service_accept_size is None:
            self.service_accept_size = size
        elif size + 16 == self.service_accept_size:
            self._auth(True)
        elif self.failure_size is None:
            if not self.skipped_banner and size - self.service_accept_size > 256:
                self.skipped_banner = True
            else:
                self.failure_size = size
        elif size == self.failure_size:
            self._auth(False)

    def _auth(self, success: bool) -> None:
        self.auth_attempts += 1
        self.auth_success = success
        self.auth_decided = success

    # -- output ----------------------------------------------------------------------------
    def version(self) -> int | None:
        client = self.sides[True].banner
        server = self.sides[False].banner
        if client is None:
            return None
        c = _major(client)
        s = _major(server) if server else None
        if c == "1.99":
            return 1 if s == "1" else 2
        if c in ("1", "2"):
            return int(c)
        return None

    def _log(self) -> None:
        self.logged = True
        self.wants_data = False
        orig_local, resp_local = _is_local(self.conn.orig_h), _is_local(self.conn.resp_h)
        direction = "OUTBOUND" if orig_local and not resp_local else (
            "INBOUND" if resp_local and not orig_local else None)
        rec = self.rec
        record = {
            "ts": self.ts, "version": self.version(), "auth_success": self.auth_success,
            "auth_attempts": self.auth_attempts, "direction": direction,
            "client": rec.get("client"), "server": rec.get("server"),
            "cipher_alg": rec.get("cipher_alg"), "mac_alg": rec.get("mac_alg"),
            "compression_alg": rec.get("compression_alg"), "kex_alg": rec.get("kex_alg"),
            "host_key_alg": rec.get("host_key_alg"), "host_key_fingerprint": rec.get("host_key_fingerprint"),
            "hassh": rec.get("hassh"), "hasshServer": rec.get("hasshServer"),
        }
        for side in self.sides.values():
            side.buf.clear()
        self.out.log("ssh", record, self.conn)
