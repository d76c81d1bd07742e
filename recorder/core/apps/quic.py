"""QUIC: the TLS handshake in Initial packets, logged to ssl.log as Zeek's QUIC analyzer does.

QUIC (RFC 9000) carries TLS 1.3 handshake messages in CRYPTO frames instead of TLS records.
Initial packets are encrypted, but with keys anyone can derive (RFC 9001 section 5.2): an
HKDF of the Destination Connection ID of the client's first Initial packet with a salt fixed
per version. This parser reads long-header packets (coalesced ones too), derives those keys,
removes header protection (AES-ECB of a sample of the ciphertext), decrypts (AES-128-GCM),
collects the CRYPTO frames of each side by offset (clients may send them out of order) and
hands the complete handshake messages, framed as TLS handshake records, to the TLS parser
(``apps.tls``). That parser writes the ssl.log record exactly as for TLS over TCP: version
(TLSv13), cipher, curve, server_name, resumed (an accepted PSK), ssl_history (``Cs``; ``CCs``
after a Retry, whose second Initial uses keys from a new connection ID). The rest of the
handshake travels in Handshake packets, whose keys come from the key exchange: like Zeek, the
record has no certificates and ``established`` stays false. ``ja4`` gets QUIC's transport
letter ``q``.

Versions: 1 (RFC 9000), 2 (RFC 9369: its own salt, labels and packet type numbers) and
drafts 29 to 34. Zeek's quic.log is not written. The service is ``quic``; ``ssl`` is added
to the connection's services once a handshake message is read, as Zeek's conn.log shows.

``cryptography`` (OpenSSL's AES) is imported only when a QUIC packet is decrypted.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import ClassVar

from recorder.core.apps.base import Conn, LogFields, Output, Parser
from recorder.core.apps.tls import TLS

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF
_SALT_V1 = bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a")
_SALT_V2 = bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9")
_SALT_D29 = bytes.fromhex("afbfec289993d24c9e9786f19c6111e04390a899")  # drafts 29-32
# long-header packet types, numbered as in version 1: 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry
INITIAL, ZERO_RTT, HANDSHAKE, RETRY = 0, 1, 2, 3
_V2_TYPES = (RETRY, INITIAL, ZERO_RTT, HANDSHAKE)  # version 2's type bits 0..3

_MAX_CID = 20
_MAX_INITIALS = 64  # Initial packets decrypted per connection (a handshake needs a few)
_MAX_DCIDS = 4  # client connection IDs whose keys are tried (the first, and one per Retry)
_MAX_CRYPTO = 1 << 16  # CRYPTO stream bytes kept per side and key set
_MAX_PIECES = 256  # out-of-order CRYPTO frames held per side and key set
_RECORD = 1 << 14  # payload of one synthesised TLS record
_NONZERO = re.compile(rb"[^\x00]")


def _salt(version: int) -> bytes | None:
    if version == VERSION_1 or version in (0xFF000021, 0xFF000022):  # drafts 33, 34
        return _SALT_V1
    if version == VERSION_2:
        return _SALT_V2
    if 0xFF00001D <= version <= 0xFF000020:
        return _SALT_D29
    return None


def hkdf_expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3's HKDF-Expand-Label (RFC 8446 section 7.1) with SHA-256 and an empty context."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


@dataclass(frozen=True, slots=True)
class PacketKeys:
    """One side's Initial packet protection: AEAD key and IV, header protection key."""

    key: bytes
    iv: bytes
    hp: bytes


def initial_keys(dcid: bytes, version: int) -> tuple[PacketKeys, PacketKeys] | None:
    """The (client, server) Initial keys for a client's first Destination Connection ID."""
    salt = _salt(version)
    if salt is None:
        return None
    initial = hmac.new(salt, dcid, hashlib.sha256).digest()  # HKDF-Extract
    prefix = b"quicv2 " if version == VERSION_2 else b"quic "
    pair = []
    for side in (b"client in", b"server in"):
        secret = hkdf_expand_label(initial, side, 32)
        pair.append(PacketKeys(hkdf_expand_label(secret, prefix + b"key", 16),
                               hkdf_expand_label(secret, prefix + b"iv", 12),
                               hkdf_expand_label(secret, prefix + b"hp", 16)))
    return pair[0], pair[1]


def varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A QUIC variable-length integer at ``pos``: (value, position after it); ValueError if short."""
    if pos >= len(buf):
        raise ValueError("short varint")
    n = 1 << (buf[pos] >> 6)
    if pos + n > len(buf):
        raise ValueError("short varint")
    value = buf[pos] & 0x3F
    for b in buf[pos + 1:pos + n]:
        value = (value << 8) | b
    return value, pos + n


@dataclass(frozen=True, slots=True)
class LongHeader:
    """A long-header packet at the start of a buffer; positions are offsets into that buffer."""

    version: int
    ptype: int  # INITIAL, ZERO_RTT, HANDSHAKE or RETRY
    dcid: bytes
    scid: bytes
    token: bytes
    pn_offset: int  # where the (protected) packet number starts
    end: int  # where the packet ends (a Retry takes the rest of the datagram)


def parse_long_header(data: bytes) -> LongHeader | None:
    """The long header at the start of ``data`` if it is one of a version this module knows."""
    if len(data) < 7 or not data[0] & 0x80:
        return None
    version = int.from_bytes(data[1:5], "big")
    if _salt(version) is None:
        return None  # version negotiation (0) or a version without known Initial keys
    bits = (data[0] >> 4) & 3
    ptype = _V2_TYPES[bits] if version == VERSION_2 else bits
    dlen = data[5]
    if dlen > _MAX_CID or len(data) < 7 + dlen:
        return None
    dcid = bytes(data[6:6 + dlen])
    pos = 6 + dlen
    slen = data[pos]
    if slen > _MAX_CID or len(data) < pos + 1 + slen:
        return None
    scid = bytes(data[pos + 1:pos + 1 + slen])
    pos += 1 + slen
    if ptype == RETRY:
        return LongHeader(version, ptype, dcid, scid, b"", pos, len(data))
    try:
        token = b""
        if ptype == INITIAL:
            tlen, pos = varint(data, pos)
            token = bytes(data[pos:pos + tlen])
            pos += tlen
        length, pos = varint(data, pos)
    except ValueError:
        return None
    if length < 1 or pos + length > len(data):
        return None
    return LongHeader(version, ptype, dcid, scid, token, pos, pos + length)


def decode_packet_number(largest: int, truncated: int, nbits: int) -> int:
    """RFC 9000 appendix A.3: the full packet number nearest the next one expected."""
    expected = largest + 1
    win = 1 << nbits
    hwin, mask = win // 2, win - 1
    candidate = (expected & ~mask) | truncated
    if candidate <= expected - hwin and candidate < (1 << 62) - win:
        return candidate + win
    if candidate > expected + hwin and candidate >= win:
        return candidate - win
    return candidate


def unprotect(packet: bytes, hdr: LongHeader, keys: PacketKeys, largest_pn: int = -1) -> tuple[int, bytes] | None:
    """Remove header protection from the long-header ``packet`` and decrypt it with ``keys``:
    (packet number, plaintext payload), or None if it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    pn_off = hdr.pn_offset
    if hdr.end - pn_off < 20 or len(packet) < hdr.end:
        return None  # no room for the 16-byte sample 4 bytes past the packet number's start
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(bytes(packet[pn_off + 4:pn_off + 20]))
    first = packet[0] ^ (mask[0] & 0x0F)
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(packet[pn_off:pn_off + pn_len], mask[1:1 + pn_len]))
    pn = decode_packet_number(largest_pn, int.from_bytes(pn_bytes, "big"), 8 * pn_len)
    aad = bytes([first]) + bytes(packet[1:pn_off]) + pn_bytes
    nonce = (int.from_bytes(keys.iv, "big") ^ pn).to_bytes(12, "big")
    try:
        payload = AESGCM(keys.key).decrypt(nonce, bytes(packet[pn_off + pn_len:hdr.end]), aad)
    except InvalidTag:
        return None
    return pn, payload


def crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """The (offset, data) of the CRYPTO frames in a decrypted Initial payload, in frame order.
    Reading stops at a frame an Initial packet may not carry, or at CONNECTION_CLOSE."""
    out: list[tuple[int, bytes]] = []
    pos, n = 0, len(payload)
    try:
        while pos < n:
            ftype = payload[pos]
            if ftype == 0x00:  # PADDING: skip the run
                m = _NONZERO.search(payload, pos)
                pos = m.start() if m else n
            elif ftype == 0x01:  # PING
                pos += 1
            elif ftype in (0x02, 0x03):  # ACK, ACK with ECN counts
                _largest, pos = varint(payload, pos + 1)
                _delay, pos = varint(payload, pos)
                ranges, pos = varint(payload, pos)
                _first, pos = varint(payload, pos)
                for _ in range(min(ranges, n)):
                    _gap, pos = varint(payload, pos)
                    _len, pos = varint(payload, pos)
                if ftype == 0x03:
                    for _ in range(3):
                        _count, pos = varint(payload, pos)
            elif ftype == 0x06:  # CRYPTO
                offset, pos = varint(payload, pos + 1)
                length, pos = varint(payload, pos)
                if pos + length > n:
                    break
                out.append((offset, bytes(payload[pos:pos + length])))
                pos += length
            else:  # CONNECTION_CLOSE (0x1c) or a frame not allowed here
                break
    except ValueError:
        pass
    return out


class _CryptoStream:
    """One side's CRYPTO stream under one key set: frames by offset, complete messages out."""

    __slots__ = ("pieces", "held", "next", "buf")

    def __init__(self) -> None:
        self.pieces: dict[int, bytes] = {}  # offset -> data, ahead of ``next``
        self.held = 0  # bytes in ``pieces``
        self.next = 0  # the stream offset up to which bytes are in order
        self.buf = bytearray()  # in-order bytes not yet forming a complete handshake message

    def add(self, offset: int, data: bytes) -> None:
        end = offset + len(data)
        if end <= self.next or end > _MAX_CRYPTO:
            return
        if offset > self.next:
            old = len(self.pieces.get(offset, b""))
            if (len(data) > old and len(self.pieces) < _MAX_PIECES
                    and self.held + len(data) - old <= _MAX_CRYPTO):
                self.pieces[offset] = data
                self.held += len(data) - old
            return
        self.buf += data[self.next - offset:]
        self.next = end
        for off in sorted(self.pieces):
            if off > self.next:
                break
            piece = self.pieces.pop(off)
            self.held -= len(piece)
            if off + len(piece) > self.next:
                self.buf += piece[self.next - off:]
                self.next = off + len(piece)

    def messages(self) -> list[bytes]:
        """Complete handshake messages (4-byte header and body), removed from the buffer."""
        out = []
        buf = self.buf
        while len(buf) >= 4:
            n = 4 + int.from_bytes(buf[1:4], "big")
            if len(buf) < n:
                break
            out.append(bytes(buf[:n]))
            del buf[:n]
        return out


def _records(message: bytes) -> bytes:
    """A handshake message as TLS 1.2-framed handshake records, as a TLS stream would carry it."""
    return b"".join(b"\x16\x03\x03" + len(chunk).to_bytes(2, "big") + chunk
                    for chunk in (message[i:i + _RECORD] for i in range(0, len(message), _RECORD)))


class _QuicOutput:
    """The TLS parser's Output inside QUIC: the connection's own, with JA4's transport ``q``."""

    def __init__(self, out: Output) -> None:
        self._out = out

    def __getattr__(self, name: str):
        return getattr(self._out, name)

    def log(self, name: str, record: dict, conn: Conn) -> None:
        ja4 = record.get("ja4")
        if isinstance(ja4, str) and ja4.startswith("t"):
            record = {**record, "ja4": "q" + ja4[1:]}
        self._out.log(name, record, conn)


class QUIC(Parser):
    service = "quic"
    transport = "udp"
    ports = frozenset({443})
    logs: ClassVar[dict[str, LogFields]] = {"ssl": TLS.logs["ssl"]}

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.tls = TLS(conn, _QuicOutput(out))  # type: ignore[arg-type]
        self.dcids: list[bytes] = []  # client DCIDs whose keys decrypted a packet, oldest first
        self.keys: dict[tuple[bytes, int], tuple[PacketKeys, PacketKeys]] = {}
        self.largest: dict[tuple[bytes, bool], int] = {}  # largest packet number per key set, side
        self.streams: dict[tuple[bytes, bool], _CryptoStream] = {}
        self.initials = 0
        self.fed = False  # a handshake message went to the TLS parser

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        hdr = parse_long_header(data)
        return hdr is not None and hdr.ptype == INITIAL and hdr.end - hdr.pn_offset >= 20

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if not data or not data[0] & 0x80 or self.initials >= _MAX_INITIALS:
            return  # short-header packets (after the handshake) carry nothing readable
        try:
            self._datagram(is_orig, bytes(data), ts)
        except (ValueError, IndexError):
            pass

    def end(self, ts: float) -> None:
        self.tls.end(ts)

    def _datagram(self, is_orig: bool, data: bytes, ts: float) -> None:
        while data and self.initials < _MAX_INITIALS:
            hdr = parse_long_header(data)
            if hdr is None or hdr.ptype == RETRY:
                return
            if hdr.ptype == INITIAL:
                self.initials += 1
                self._initial(is_orig, data[:hdr.end], hdr, ts)
            data = data[hdr.end:]

    def _initial(self, is_orig: bool, packet: bytes, hdr: LongHeader, ts: float) -> None:
        # the keys come from a DCID of the client's: its first, or its first after a Retry
        cands = self.dcids[::-1]
        if is_orig and hdr.dcid not in self.dcids and len(self.dcids) < _MAX_DCIDS:
            cands.append(hdr.dcid)
        for dcid in cands:
            pair = self.keys.get((dcid, hdr.version)) or initial_keys(dcid, hdr.version)
            if pair is None:
                return
            res = unprotect(packet, hdr, pair[0 if is_orig else 1], self.largest.get((dcid, is_orig), -1))
            if res is not None:
                break
        else:
            return
        if dcid not in self.dcids:
            self.dcids.append(dcid)
        self.keys[(dcid, hdr.version)] = pair
        pn, payload = res
        key = (dcid, is_orig)
        self.largest[key] = max(self.largest.get(key, -1), pn)
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = _CryptoStream()
        for offset, chunk in crypto_frames(payload):
            stream.add(offset, chunk)
        messages = stream.messages()
        if messages:
            if not self.fed:
                self.fed = True
                if TLS.service not in self.conn.services:
                    self.conn.services.append(TLS.service)
            self.tls.data(is_orig, b"".join(_records(m) for m in messages), ts)
