"""MySQL/MariaDB client/server protocol: recognise it and hand an SSL session over to TLS.

Every message is a packet: a 3-byte little-endian payload length, a 1-byte sequence id, the
payload. The server speaks first with its greeting (protocol version 10: a NUL-terminated
server version, a thread id, the first 8 bytes of the auth challenge, a filler byte and the
capability flags). A client that wants TLS answers with a short SSLRequest instead of its login
(sequence id 1: capability flags with CLIENT_SSL, max packet size, character set and 23 zero
bytes, 32 bytes in all; 5 bytes with the pre-4.1 flags) and starts the TLS handshake right away.
Zeek's MySQL analyzer hands the connection to its SSL analyzer there, and so does this parser:
it sets ``redetect`` and TLS is found in the bytes that follow.

The client does not wait for the server between the SSLRequest and its ClientHello, so one
delivery can hold both (the dispatcher joins in-order segments of one direction). A hand-over
cannot give bytes back, so in that case this parser runs the TLS parser itself for the rest of
the connection and adds ``ssl`` to the connection's services, as a hand-over would have.

Zeek's mysql.log (commands and their results) is not written.
"""

from __future__ import annotations

from recorder.core.apps.base import Conn, Output, Parser
from recorder.core.apps.tls import TLS

CLIENT_PROTOCOL_41 = 0x0200
CLIENT_SSL = 0x0800
_MAX_GREETING = 1024  # a greeting is about 80-120 bytes; longer is not one
_MAX_CLIENT = 1 << 16  # client bytes looked at for the SSLRequest before giving up


def parse_greeting(data: bytes) -> dict | None:
    """The server greeting at the start of ``data`` as {version, thread_id, capabilities}, or None.

    Capabilities hold the lower 16 bits only when the greeting ends there (old servers)."""
    if len(data) < 5:
        return None
    length = int.from_bytes(data[0:3], "little")
    if data[3] != 0 or data[4] != 10 or not 20 <= length <= _MAX_GREETING:
        return None
    body = bytes(data[4:4 + length])
    nul = body.find(b"\x00", 1)
    if nul < 2 or nul > 80:
        return None
    version = body[1:nul]
    if not all(0x20 <= b < 0x7F for b in version):
        return None
    pos = nul + 1
    if len(body) < pos + 4 + 8 + 1 + 2 and len(body) == length:
        return None  # complete, yet too short for thread id, challenge, filler and flags
    thread_id = int.from_bytes(body[pos:pos + 4], "little")
    pos += 12  # thread id, first part of the auth challenge
    if pos < len(body) and body[pos] != 0:
        return None  # the filler byte
    caps = int.from_bytes(body[pos + 1:pos + 3], "little")
    if len(body) >= pos + 8:
        caps |= int.from_bytes(body[pos + 6:pos + 8], "little") << 16  # after charset and status
    return {"version": version.decode("ascii"), "thread_id": thread_id, "capabilities": caps}


def is_ssl_request(data: bytes) -> int:
    """The length of the SSLRequest packet at the start of ``data``, or 0 if there is none."""
    if len(data) < 4:
        return 0
    length = int.from_bytes(data[0:3], "little")
    if data[3] != 1 or len(data) < 4 + length:
        return 0
    caps = int.from_bytes(data[4:6], "little") if length >= 2 else 0
    if length == 32 and caps & CLIENT_PROTOCOL_41 and caps & CLIENT_SSL:
        return 36
    if length == 5 and not caps & CLIENT_PROTOCOL_41 and caps & CLIENT_SSL:
        return 9
    return 0


class MySQL(Parser):
    service = "mysql"
    transport = "tcp"
    ports = frozenset({3306})

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.client = bytearray()  # the client's first bytes, until its first packet is complete
        self.client_done = False  # its first packet was seen (or cannot be): nothing more to find
        self.tls: TLS | None = None  # the TLS parser this one runs itself (see the module text)

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return not is_orig and parse_greeting(data) is not None

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.tls is not None:
            self.tls.data(is_orig, data, ts)
            return
        if not is_orig:
            return
        if self.client_done or self.redetect:
            return
        self.client += data
        if len(self.client) < 4:
            return
        length = int.from_bytes(self.client[0:3], "little")
        if len(self.client) < 4 + length:
            if len(self.client) > _MAX_CLIENT:
                self.client_done = True
                self.client.clear()
            return
        self.client_done = True
        n = is_ssl_request(bytes(self.client[:4 + length]))
        rest = bytes(self.client[n:])
        self.client.clear()
        if not n:
            return
        if not rest:
            self.redetect = True
            return
        self.tls = TLS(self.conn, self.out)
        if TLS.service not in self.conn.services:
            self.conn.services.append(TLS.service)
        self.tls.data(True, rest, ts)

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        if self.tls is not None:
            self.tls.gap(is_orig, nbytes, ts)
        elif is_orig:
            self.client_done = True
            self.client.clear()

    def end(self, ts: float) -> None:
        if self.tls is not None:
            self.tls.end(ts)
