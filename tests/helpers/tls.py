"""TLS records and handshake messages built byte by byte (ClientHello, ServerHello and the
length-prefixed vectors they are made of), for the TLS, QUIC, XMPP and MySQL parsers' tests."""

from __future__ import annotations

import struct


def vec(data: bytes, width: int) -> bytes:
    return len(data).to_bytes(width, "big") + data


def ext(etype: int, data: bytes) -> bytes:
    return struct.pack(">H", etype) + vec(data, 2)


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + len(body).to_bytes(3, "big") + body


def record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack(">BHH", ctype, version, len(body)) + body


def u16s(values) -> bytes:
    return b"".join(struct.pack(">H", v) for v in values)


def client_hello(*, version=0x0303, ciphers=(0xC02F, 0x009C), sni="example.com", session_id=b"",
                 extensions: list[tuple[int, bytes]] | None = None) -> bytes:
    exts = extensions
    if exts is None:
        exts = [(0, vec(b"\x00" + vec(sni.encode(), 2), 2))] if sni else []
    body = (struct.pack(">H", version) + b"\x11" * 32 + vec(session_id, 1) + vec(u16s(ciphers), 2)
            + vec(b"\x00", 1) + vec(b"".join(ext(t, d) for t, d in exts), 2))
    return handshake(1, body)


def server_hello(*, version=0x0303, cipher=0xC02F, session_id=b"", extensions=()) -> bytes:
    body = (struct.pack(">H", version) + b"\x22" * 32 + vec(session_id, 1) + struct.pack(">H", cipher)
            + b"\x00" + vec(b"".join(ext(t, d) for t, d in extensions), 2))
    return handshake(2, body)
