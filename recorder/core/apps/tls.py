"""SSL/TLS: ssl.log with Zeek's meaning, plus JA3, JA3S and JA4 fingerprints.

The parser reads the plaintext part of a TLS (or SSLv2-compatible) handshake from both
directions: records are reassembled across segments and handshake messages across records.
Zeek's rules, as its ``base/protocols/ssl`` scripts apply them:

- ``version`` is the server's: ServerHello's version, overridden by a single value in its
  supported_versions extension (TLS 1.3); names as Zeek's ``SSL::version_strings`` (TLSv12,
  TLSv13, TLSv13-draft23, unknown-32257 ...). ``cipher`` is the server's choice by IANA name.
- ``curve`` from the ServerKeyExchange (named curve) or the server's key_share.
- ``server_name`` is the first SNI name, ``next_protocol`` the server's ALPN choice.
- ``resumed``: the server echoed the client's session id (not for TLS 1.3), the client sent a
  session ticket and a ChangeCipherSpec without a ClientKeyExchange, or the server accepted a PSK.
- ``established``: a record that cannot be read (encrypted) arrives once both sides have sent
  ChangeCipherSpec; SSLv2 at the CLIENT-MASTER-KEY. Zeek logs the record then and stops
  analysing the connection; so does this parser. Otherwise the record is logged at the end of
  the connection. One addition to Zeek's rule: in TLS 1.3 an application-data record also
  switches its side to encrypted, so a TLS 1.3 session without the middlebox-compatibility
  ChangeCipherSpec still counts as established.
- ``ssl_history``: one letter per handshake message, ChangeCipherSpec, alert, heartbeat; the
  client's in upper case, at most 100.
- Certificates (TLS <= 1.2; TLS 1.3 sends them encrypted): ``cert_chain_fps`` and
  ``client_cert_chain_fps`` are SHA-256 fingerprints; both are set (possibly empty) once any
  certificate message is seen, as Zeek does. Subject and issuer of the first certificate.

Extras at the end of the record: ``ja3``/``ja3s`` (MD5 hex, GREASE removed, as Salesforce's
reference), ``ja4`` (FoxIO's TLS client fingerprint; both from ``apps.tls_hello``), ``alpn`` (the client's offer) and the
leaf certificate's validity.

Lost bytes (``gap``): the side resynchronises at its next valid record header (content type 20-24,
version 3.x, a length within the TLS limit, confirmed by the header after it or by the record
ending where the data ends) and goes on: later handshake messages, ChangeCipherSpec and
``established`` are read as without the gap. The handshake message that spanned the gap is
dropped (after a gap a handshake record is read only from one that starts a message); an
application-data record after a gap means that side is encrypted (its ChangeCipherSpec may have
been lost). ssl.log has no gap field: the row is logged with what is known (conn.log's
``missed_bytes`` counts the loss).

Typed for Cython in pure-Python mode (see ``recorder.core.compiled``): each direction's state is
an extension type with C flags and counters, and the record layer, the handshake message walk and
the hellos read their headers and lengths on C integer offsets into ``bytes`` and ``bytearray``
(indexes bounds-checked as in Python). The same file runs as Python.
"""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar

try:
    import cython
except ImportError:  # no Cython: the same source runs as plain Python
    from recorder.core import purecython as cython

from recorder.core.apps.base import CONN_ID, MAX_BUFFER, Conn, LogFields, Output, Parser
from recorder.core.apps.tls_hello import (
    alpn_names,
    cipher_name,
    client_fingerprints,
    extensions,
    ja3_string,
    u16s,
    vec,
    version_name,
)
from recorder.core.apps.tls_tables import ALERTS, CIPHERS, CURVES, HS_LETTERS
from recorder.core.apps.x509 import name_matches, parse_certificate
from recorder.core.purecython import slotted

_NO_SESSION = bytes(32)
_HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")
_MAX_HISTORY = 100
_MAX_RECORD = (1 << 14) + 2048  # TLSCiphertext limit
_HEADER = re.compile(rb"[\x14-\x18]\x03[\x00-\x04]")  # content type, version: a record header candidate


@cython.cclass
class _Side:
    """Per-direction reassembly state."""

    buf = cython.declare(bytearray, visibility="public")  # bytes not yet forming a complete record
    hs = cython.declare(bytearray, visibility="public")  # handshake bytes not yet forming a complete message
    encrypted = cython.declare(cython.bint, visibility="public")  # sent ChangeCipherSpec: ciphertext now
    dead = cython.declare(cython.bint, visibility="public")  # stopped parsing (garbage, gap or buffer limit)
    records = cython.declare(cython.Py_ssize_t, visibility="public")
    v2 = cython.declare(cython.bint, visibility="public")  # SSLv2 record framing (its first record did)
    resync = cython.declare(cython.bint, visibility="public")  # bytes were lost: the next header is searched for
    hs_resync = cython.declare(cython.bint, visibility="public")  # lost: the next handshake record must start a message
    lost = cython.declare(cython.bint, visibility="public")  # bytes of this side were lost at some point

    def __init__(self) -> None:
        self.buf = bytearray()
        self.hs = bytearray()
        self.encrypted = False
        self.dead = False
        self.records = 0
        self.v2 = False
        self.resync = False
        self.hs_resync = False
        self.lost = False


if not cython.compiled:  # as Python: the declared attributes as __slots__ (Cython drops this)
    _Side = slotted(_Side)


class TLS(Parser):
    service = "ssl"
    transport = "tcp"
    ports = frozenset({443, 465, 563, 585, 614, 636, 853, 989, 990, 992, 993, 994, 995, 5223, 5061, 8443})
    logs: ClassVar[dict[str, LogFields]] = {"ssl": CONN_ID + (
        ("version", "string"), ("cipher", "string"),
        ("curve", "string"), ("server_name", "string"), ("resumed", "bool"), ("last_alert", "string"),
        ("next_protocol", "string"), ("established", "bool"), ("ssl_history", "string"),
        ("cert_chain_fps", "vector[string]"), ("client_cert_chain_fps", "vector[string]"),
        ("sni_matches_cert", "bool"), ("subject", "string"), ("issuer", "string"),
        ("client_subject", "string"), ("client_issuer", "string"), ("validation_status", "string"),
        ("ja3", "string"), ("ja3s", "string"), ("ja4", "string"), ("alpn", "vector[string]"),
        ("cert_not_before", "time"), ("cert_not_after", "time"),
    )}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.sides = {True: _Side(), False: _Side()}
        self.rec: dict = {}
        self.ts: float | None = None
        self.history: list[str] = []
        self.version_num: int | None = None
        self.cipher_num: int | None = None
        self.session_id: bytes | None = None
        self.client_ticket_nonempty = False
        self.client_kex_seen = False
        self.client_psk = False
        self.server_sans: tuple[str, ...] = ()
        self._inspect = out.inspect if getattr(out, "inspecting", False) else None
        self.now = 0.0  # the time of the bytes being parsed (for inspection buffers)
        self.certs_seen = False
        self.chains: dict[str, list[str]] = {"server": [], "client": []}
        self.done = False  # logged: the analysis is over

    # -- detection -------------------------------------------------------------------------
    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        if len(data) >= 5 and data[0] == 22 and data[1] == 3 and data[2] <= 4:
            length = int.from_bytes(data[3:5], "big")
            if not 4 <= length <= _MAX_RECORD:
                return False
            return len(data) < 6 or data[5] in (1, 2)
        return cls._sslv2_hello(data) is not None

    @staticmethod
    def _sslv2_hello(data: bytes) -> bytes | None:
        """The body of an SSLv2-format ClientHello (2-byte header), or None."""
        if len(data) < 11 or not data[0] & 0x80 or data[2] != 1:
            return None
        length = ((data[0] & 0x7F) << 8) | data[1]
        version = int.from_bytes(data[3:5], "big")
        if version != 0x0002 and not 0x0300 <= version <= 0x0304:
            return None
        spec_len = int.from_bytes(data[5:7], "big")
        sid_len = int.from_bytes(data[7:9], "big")
        chal_len = int.from_bytes(data[9:11], "big")
        if spec_len % 3 or length != 9 + spec_len + sid_len + chal_len or not 16 <= chal_len <= 32:
            return None
        return bytes(data[2:2 + length]) if len(data) >= 2 + length else bytes(data[2:])

    # -- stream input ----------------------------------------------------------------------
    @cython.locals(side=_Side)
    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        side = self.sides[is_orig]
        if self.done or side.dead or not data:
            return
        if self.ts is None:
            self.ts = ts
        self.now = ts
        side.buf += data
        if len(side.buf) > MAX_BUFFER:
            side.dead = True
            side.buf.clear()
            self._check_sated()
            return
        try:
            self._records(is_orig, side, ts)
        except (ValueError, IndexError):
            side.dead = True
            side.buf.clear()
        if side.dead:
            self._check_sated()

    @cython.locals(side=_Side)
    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        side = self.sides[is_orig]
        side.buf.clear()
        side.hs.clear()
        if not side.dead and not side.v2:
            side.resync = side.hs_resync = side.lost = True  # record boundaries are lost: find the next header

    @staticmethod
    def _header_ok(buf: bytearray, pos: int) -> bool:
        return (20 <= buf[pos] <= 24 and buf[pos + 1] == 3 and buf[pos + 2] <= 4
                and 0 < int.from_bytes(buf[pos + 3:pos + 5], "big") <= _MAX_RECORD)

    def _resync(self, side: _Side) -> bool:
        """After a gap: drop the bytes before the next record header that the data confirms;
        False while more data is needed to tell."""
        buf = side.buf
        n = len(buf)
        for m in _HEADER.finditer(bytes(buf)):  # a copy: the buffer is cut inside the loop
            pos = m.start()
            if pos + 5 > n:
                break
            if not self._header_ok(buf, pos):
                continue
            nxt = pos + 5 + int.from_bytes(buf[pos + 3:pos + 5], "big")
            if nxt + 5 <= n and not self._header_ok(buf, nxt):
                continue  # the record after it does not start with a header: not one
            if nxt != n and nxt + 5 > n:
                del buf[:pos]  # wait for the bytes that confirm it
                return False
            del buf[:pos]
            side.resync = False
            return True
        del buf[:max(0, n - 4)]  # nothing here: keep only what may begin a header
        return False

    def _check_sated(self) -> None:
        if self.sides[True].dead and self.sides[False].dead:
            self.wants_data = False  # neither side can be read further: only end() is left

    def end(self, ts: float) -> None:
        if not self.done and self.ts is not None and (self.history or self.rec):
            self._log()

    # -- records ---------------------------------------------------------------------------
    @cython.locals(side=_Side, buf=bytearray, pos=cython.Py_ssize_t, need=cython.Py_ssize_t, ctype=cython.int,
                   ver=cython.int, length=cython.Py_ssize_t, readable=cython.bint)
    def _records(self, is_orig: bool, side: _Side, ts: float) -> None:
        buf = side.buf
        if side.resync and not self._resync(side):
            return
        pos = 0
        while not self.done and not side.dead:
            if len(buf) - pos < 3:
                break
            if side.records == 0 and buf[pos] & 0x80 and (buf[pos + 2] == 1 or buf[pos + 2] == 4):
                side.v2 = True
            if side.v2 and buf[pos] & 0x80:  # SSLv2 framing (2-byte header); TLS records may follow
                need = (((buf[pos] & 0x7F) << 8) | buf[pos + 1]) + 2
                if len(buf) - pos < need:
                    break
                self._sslv2(is_orig, bytes(buf[pos + 2:pos + need]))
                side.records += 1
                pos += need
                continue
            if len(buf) - pos < 5:
                break
            ctype = buf[pos]
            ver = buf[pos + 1]
            length = (buf[pos + 3] << 8) | buf[pos + 4]
            if not 20 <= ctype <= 26 or (ver != 3 and ver != 0x7F and ver != 0xFE) or length > _MAX_RECORD:
                side.dead = True
                break
            if len(buf) - pos < 5 + length:
                break
            # only plaintext alerts, handshakes and heartbeats are read: skip copying ciphertext
            readable = not side.encrypted and (ctype == 21 or ctype == 22)
            body = bytes(buf[pos + 5:pos + 5 + length]) if readable else b""
            pos += 5 + length
            side.records += 1
            self._record(is_orig, side, ctype, body, ts)
        del buf[:pos]

    @cython.locals(side=_Side, ctype=cython.int, body=bytes, i=cython.Py_ssize_t, code=cython.int)
    def _record(self, is_orig: bool, side: _Side, ctype: int, body: bytes, ts: float) -> None:
        if ctype == 20:  # ChangeCipherSpec
            self._hist(is_orig, "i")
            side.encrypted = True
            side.hs.clear()
            if is_orig and self.client_ticket_nonempty and not self.client_kex_seen:
                self.rec["resumed"] = True
            return
        if ctype == 23 and (self._tls13() or side.lost):
            # TLS 1.3 without middlebox-compatibility ChangeCipherSpec, or after a gap that may
            # have taken this side's ChangeCipherSpec: application data is encrypted
            side.encrypted = True
        if side.encrypted:
            self._ciphertext()
            return
        if ctype == 21:
            for i in range(0, len(body) - 1, 2):
                self._hist(is_orig, "l")
                code = body[i + 1]
                self.rec["last_alert"] = ALERTS.get(code, f"unknown-{code}")
        elif ctype == 22:
            if side.hs_resync:
                if len(body) < 4 or body[0] not in HS_LETTERS or \
                        ((body[1] << 16) | (body[2] << 8) | body[3]) > MAX_BUFFER:
                    return  # the rest of a message that began before the gap
                side.hs_resync = False
            side.hs += body
            self._handshakes(is_orig, side)
        elif ctype == 24:
            self._hist(is_orig, "b")
        elif ctype != 23:
            self._hist(is_orig, "q")

    def _ciphertext(self) -> None:
        if self.sides[True].encrypted and self.sides[False].encrypted and not self.done:
            self.rec["established"] = True
            self._log()

    def _tls13(self) -> bool:
        v = self.version_num
        return v is not None and (v == 0x0304 or v // 0xFF == 0x7F or v == 0x7E01 or v == 0x7E02)

    def _hist(self, is_orig: bool, letter: str) -> None:
        if len(self.history) < _MAX_HISTORY:
            self.history.append(letter.upper() if is_orig else letter.lower())

    # -- handshake messages ----------------------------------------------------------------
    @cython.locals(side=_Side, hs=bytearray, pos=cython.Py_ssize_t, mtype=cython.int, length=cython.Py_ssize_t)
    def _handshakes(self, is_orig: bool, side: _Side) -> None:
        hs = side.hs
        pos = 0
        while len(hs) - pos >= 4 and not self.done:
            mtype = hs[pos]
            length = (hs[pos + 1] << 16) | (hs[pos + 2] << 8) | hs[pos + 3]
            if length > MAX_BUFFER:
                side.dead = True
                hs.clear()
                return
            if len(hs) - pos < 4 + length:
                break
            msg = bytes(hs[pos + 4:pos + 4 + length])
            pos += 4 + length
            self._handshake(is_orig, mtype, msg)
        del hs[:pos]

    def _handshake(self, is_orig: bool, mtype: int, msg: bytes) -> None:
        letter = HS_LETTERS.get(mtype, "z")
        try:
            if mtype == 1:
                self._client_hello(msg)
            elif mtype == 2:
                if self._server_hello(msg):
                    letter = "j"
            elif mtype == 11:
                self._certificates(is_orig, msg)
            elif mtype == 12:
                self._server_key_exchange(msg)
            elif mtype == 16 and is_orig:
                self.client_kex_seen = True
        except (ValueError, IndexError):
            pass  # a malformed message still counts in the history
        self._hist(is_orig, letter)

    @cython.locals(msg=bytes, version=cython.int, pos=cython.Py_ssize_t, exts=list, rec=dict, etype=cython.int,
                   sni=cython.bint, ext_types=list)
    def _client_hello(self, msg: bytes) -> None:
        version = int.from_bytes(msg[0:2], "big")
        session_id, pos = vec(msg, 34, 1)
        cipher_raw, pos = vec(msg, pos, 2)
        _compression, pos = vec(msg, pos, 1)
        exts = extensions(msg, pos)
        ciphers = u16s(cipher_raw)
        if session_id and session_id != _NO_SESSION:
            self.session_id = session_id
        groups: list[int] = []
        points: list[int] = []
        sig_algs: list[int] = []
        versions: list[int] = []
        alpn: list[str] = []
        sni = False
        rec = self.rec
        for etype, data in exts:
            if etype == 0:
                sni = True
                name = self._sni(data)
                if name is not None and "server_name" not in rec:
                    rec["server_name"] = name
                    self.out.name(self.conn.resp_h, name, ts=self.ts or 0.0, source="ssl")
            elif etype == 10:
                groups = u16s(vec(data, 0, 2)[0])
            elif etype == 11:
                points = list(vec(data, 0, 1)[0])
            elif etype == 13:
                sig_algs = u16s(vec(data, 0, 2)[0])
            elif etype == 16:
                alpn = alpn_names(data)
            elif etype == 43:
                versions = u16s(vec(data, 0, 1)[0])
            elif etype == 35 and data:
                self.client_ticket_nonempty = True
            elif etype == 41:
                self.client_psk = True
        if "ja3" in rec:
            return  # a second ClientHello (after a HelloRetryRequest): fingerprint the first
        ext_types = [e for e, _ in exts]
        rec["ja3"], rec["ja4"] = client_fingerprints(
            version, tuple(ciphers), tuple(ext_types), tuple(groups), tuple(points), tuple(versions),
            sni, tuple(alpn), tuple(sig_algs))
        if alpn:
            rec["alpn"] = alpn
        if self._inspect is not None:
            bufs = {"ja3.hash": rec["ja3"].encode(),
                    "ja3.string": ja3_string(version, ciphers, ext_types, groups, points).encode()}
            if "server_name" in self.rec:
                bufs["tls.sni"] = self.rec["server_name"].encode("latin-1")
            self._inspect(self.conn, True, self.now, 0, bufs)

    @staticmethod
    @cython.locals(data=bytes, block=bytes, pos=cython.Py_ssize_t, kind=cython.int, end=cython.Py_ssize_t)
    def _sni(data: bytes) -> str | None:
        block, _ = vec(data, 0, 2)
        pos = 0
        while pos + 3 <= len(block):
            kind = block[pos]
            end = pos + 3 + ((block[pos + 1] << 8) | block[pos + 2])  # vec(block, pos + 1, 2)
            if end > len(block):
                raise ValueError("vector overruns")
            if kind == 0:
                return block[pos + 3:end].decode("latin-1")
            pos = end
        return None

    def _server_hello(self, msg: bytes) -> bool:
        """Parse a ServerHello; True if it is a HelloRetryRequest."""
        version = int.from_bytes(msg[0:2], "big")
        random = msg[2:34]
        if len(random) != 32:
            raise ValueError("short ServerHello")
        old_draft = version // 0xFF == 0x7F  # drafts before -22 put their version here: no session id
        if old_draft:
            session_id, pos = b"", 34
        else:
            session_id, pos = vec(msg, 34, 1)
        cipher = int.from_bytes(msg[pos:pos + 2], "big")
        pos += 2
        if not old_draft:
            pos += 1  # compression method
        exts = extensions(msg, pos)
        chosen_version = None
        ext_types = []
        for etype, data in exts:
            ext_types.append(etype)
            if etype == 43 and len(data) == 2:
                chosen_version = int.from_bytes(data, "big")
            elif etype in (51, 40) and len(data) >= 2:
                self.rec["curve"] = CURVES.get(int.from_bytes(data[0:2], "big"),
                                               f"unknown-{int.from_bytes(data[0:2], 'big')}")
            elif etype == 16:
                names = alpn_names(data)
                if names:
                    self.rec["next_protocol"] = names[0]
            elif etype == 41 and self.client_psk:
                self.rec["resumed"] = True
        if self.version_num is None or chosen_version is not None:
            self.version_num = chosen_version if chosen_version is not None else version
        self.rec["version"] = version_name(self.version_num)
        self.cipher_num = cipher
        self.rec["cipher"] = cipher_name(cipher)
        v = self.version_num
        if self.session_id is not None and session_id == self.session_id and v // 0xFF != 0x7F and v != 0x0304:
            self.rec["resumed"] = True
        ja3s = ",".join([str(version), str(cipher), "-".join(str(e) for e in ext_types)])
        self.rec["ja3s"] = hashlib.md5(ja3s.encode()).hexdigest()
        if self._inspect is not None:
            self._inspect(self.conn, False, self.now, 0,
                          {"ja3s.hash": self.rec["ja3s"].encode(), "ja3s.string": ja3s.encode()})
        return random == _HRR_RANDOM

    def _certificates(self, is_orig: bool, msg: bytes) -> None:
        pos = 0
        if self._tls13():  # TLS 1.3 Certificate: request context, entries with extensions
            _ctx, pos = vec(msg, 0, 1)
        chain_raw, _ = vec(msg, pos, 3)
        self.certs_seen = True
        certs = []
        pos = 0
        while pos + 3 <= len(chain_raw):
            der, pos = vec(chain_raw, pos, 3)
            certs.append(der)
            if self._tls13():
                _exts, pos = vec(chain_raw, pos, 2)
        chain = self.chains["client" if is_orig else "server"]
        for i, der in enumerate(certs):
            cert = parse_certificate(der)
            chain.append(hashlib.sha256(der).hexdigest())
            if i == 0 and cert is not None:
                who = "" if not is_orig else "client_"
                self.rec[f"{who}subject"] = cert.subject
                self.rec[f"{who}issuer"] = cert.issuer
                if not is_orig:
                    self.rec["cert_not_before"] = cert.not_before
                    self.rec["cert_not_after"] = cert.not_after
                    self.server_sans = cert.san_dns + ((self._cn(cert.subject),) if cert.subject else ())
                if self._inspect is not None and not is_orig:
                    bufs = {"tls.cert_fingerprint": ":".join(f"{b:02x}" for b in hashlib.sha1(der).digest()).encode()}
                    if cert.subject_dn is not None:
                        bufs["tls.cert_subject"] = cert.subject_dn.encode("utf-8", "replace")
                    if cert.issuer_dn is not None:
                        bufs["tls.cert_issuer"] = cert.issuer_dn.encode("utf-8", "replace")
                    self._inspect(self.conn, False, self.now, 0, bufs)

    @staticmethod
    def _cn(subject: str) -> str:
        for part in subject.split(","):
            if part.startswith("CN="):
                return part[3:]
        return ""

    def _server_key_exchange(self, msg: bytes) -> None:
        name = cipher_name(self.cipher_num) if self.cipher_num is not None else ""
        if ("ECDHE" in name or "ECDH_ANON" in name) and len(msg) >= 3 and msg[0] == 3:
            code = int.from_bytes(msg[1:3], "big")
            self.rec["curve"] = CURVES.get(code, f"unknown-{code}")

    def _sslv2(self, is_orig: bool, body: bytes) -> None:
        if not body:
            return
        if body[0] == 1 and is_orig:  # CLIENT-HELLO
            self._hist(True, "c")
        elif body[0] == 2 and is_orig:  # CLIENT-MASTER-KEY: Zeek counts SSLv2 as established here
            self.rec["established"] = True
            self._log()
        elif body[0] == 4 and not is_orig and len(body) >= 11:  # SERVER-HELLO
            version = int.from_bytes(body[3:5], "big")
            self.version_num = self.version_num or version
            self.rec["version"] = version_name(self.version_num)
            cert_len = int.from_bytes(body[5:7], "big")
            spec_len = int.from_bytes(body[7:9], "big")
            specs = body[11 + cert_len:11 + cert_len + spec_len]
            if len(specs) >= 3:
                code = int.from_bytes(specs[0:3], "big")
                self.rec["cipher"] = CIPHERS.get(code, f"unknown-{code}")
            self._hist(False, "s")

    # -- output ----------------------------------------------------------------------------
    @cython.locals(rec=dict, record=dict)
    def _log(self) -> None:
        self.done = True
        self.wants_data = False
        rec = self.rec
        record = {
            "ts": self.ts, "version": rec.get("version"), "cipher": rec.get("cipher"),
            "curve": rec.get("curve"), "server_name": rec.get("server_name"),
            "resumed": bool(rec.get("resumed")), "last_alert": rec.get("last_alert"),
            "next_protocol": rec.get("next_protocol"), "established": bool(rec.get("established")),
            "ssl_history": "".join(self.history),
            "cert_chain_fps": list(self.chains["server"]) if self.certs_seen else None,
            "client_cert_chain_fps": list(self.chains["client"]) if self.certs_seen else None,
            "subject": rec.get("subject"), "issuer": rec.get("issuer"),
            "client_subject": rec.get("client_subject"), "client_issuer": rec.get("client_issuer"),
            "sni_matches_cert": None, "validation_status": None,
            "ja3": rec.get("ja3"), "ja3s": rec.get("ja3s"), "ja4": rec.get("ja4"),
            "alpn": rec.get("alpn"), "cert_not_before": rec.get("cert_not_before"),
            "cert_not_after": rec.get("cert_not_after"),
        }
        sni = rec.get("server_name")
        if sni and self.server_sans:
            record["sni_matches_cert"] = any(name_matches(sni, n) for n in self.server_sans if n)
        for side in self.sides.values():
            side.buf.clear()
            side.hs.clear()
        self.out.log("ssl", record, self.conn)
