"""The contract between the application layer and its protocol parsers.

The flow meter counts packets; the application layer (``apps.dispatch``) turns the payload of
each connection into records with Zeek's field meaning. It reassembles TCP streams per
direction (``apps.streams``), finds the parser for a connection from its first bytes (on any
port), and hands the parser in-order bytes. A parser never sees packets, only:

    data(is_orig, bytes, ts)    the next in-order bytes of one direction
    gap(is_orig, nbytes, ts)    bytes that will never arrive (lost or not captured)
    end(ts)                     the connection is over (FIN/RST, timeout or end of input)

Datagram parsers (DNS over UDP) get ``data`` once per datagram, ``gap`` never.

A parser reports through its ``Output``: ``log(name, record)`` with Zeek's field names (the
framework adds ``uid``, ``id.orig_h/p``, ``id.resp_h/p`` and ``proto`` unless the record has
them), ``credential(...)`` for a login, ``file(...)`` for a transferred body, ``name(...)``
and ``mac(...)`` for what an address is called and its hardware address, ``expect(...)`` for a
data channel announced on a control channel (FTP PORT/PASV), and, only when the output's
``inspecting`` is true (the rule engine), ``inspect(conn, is_orig, ts, tx, buffers)``: the
inspection buffers of one message (an HTTP request or response, a DNS query, a TLS handshake)
by Suricata's sticky-buffer names (``http.uri``, ``file.data``, ``dns.query``, ``tls.sni``...),
``tx`` numbering the transactions of a connection (an HTTP request and its response share one). Records are plain dicts whose values are str, int, float (times as
epoch seconds, intervals as seconds), bool, list (Zeek sets and vectors) or None (unset).

A parser that hands the connection over (STARTTLS in SMTP/POP3/IMAP/XMPP/FTP, HTTP CONNECT or
Upgrade) sets ``self.redetect = True``: the dispatcher calls its ``end`` and runs detection
afresh on the connection's next bytes; each service recognised stays in ``conn.services``.

A parser that needs no more of the connection's bytes (its record is written and nothing later
changes it: TLS once both sides encrypt, SSH once logged) sets ``self.wants_data = False``: the
dispatcher then stops reassembling the connection, and still calls ``end`` at FIN, RST or timeout.

Parsers must never raise on bad input: an exception from a parser is caught by the dispatcher,
counted per service as a parser failure, and the parser is detached from that connection.
Memory is the parser's own responsibility: buffer at most ``MAX_BUFFER`` bytes per direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

MAX_BUFFER = 1 << 20  # bytes a parser may hold per direction while waiting for a complete unit


@dataclass(slots=True)
class Conn:
    """The connection a parser works on, oriented as the flow meter orients it (orig = client)."""

    orig_h: str
    orig_p: int
    resp_h: str
    resp_p: int
    proto: str  # "tcp" or "udp"
    start: float  # epoch seconds of the connection's first packet
    uid: str | None = None  # filled by the dispatcher once the flow meter's uid is known
    services: list[str] = field(default_factory=list)  # parsers that recognised this connection

    def ident(self) -> dict:
        return {"uid": self.uid, "id.orig_h": self.orig_h, "id.orig_p": self.orig_p,
                "id.resp_h": self.resp_h, "id.resp_p": self.resp_p}


# A log's fields in order with Zeek types: time, interval, string, addr, port, count, int,
# double, bool, enum, set[string], vector[string], vector[interval], set[addr], ...
LogFields = tuple[tuple[str, str], ...]

# The fields every connection's log starts with, as in Zeek.
CONN_ID: LogFields = (("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"),
                      ("id.resp_h", "addr"), ("id.resp_p", "port"))


class Output(Protocol):
    """Where a parser's findings go (implemented by the dispatcher; a list-collecting fake in tests)."""

    def log(self, name: str, record: dict, conn: Conn) -> None: ...

    def credential(self, conn: Conn, *, ts: float, protocol: str, user: str | None,
                   secret: str | None, success: bool | None, note: str | None = None) -> None: ...

    def file(self, conn: Conn, *, ts: float, data: bytes, is_orig: bool, source: str,
             filename: str | None = None, mime_type: str | None = None,
             total_bytes: int | None = None, missing_bytes: int = 0,
             piece: tuple[str, int] | None = None) -> str: ...
    # returns the file's fuid (Zeek's F... id), so a parser can cite it (http.log resp_fuids);
    # piece=(key, offset): ``data`` is the part of the file ``key`` names at that offset (an HTTP
    # range), joined with its other parts, from this connection or another

    def name(self, addr: str, name: str, *, ts: float, source: str) -> None: ...

    def mac(self, addr: str, mac: str, *, ts: float, source: str) -> None: ...
    # the hardware address a protocol gives for an address (DHCP's client hardware address)

    def expect(self, conn: Conn, *, orig_h: str | None, resp_h: str, resp_p: int,
               parser: type[Parser], context: dict, ts: float) -> None: ...
    # a connection to resp_h:resp_p (from orig_h, if given) within the next minutes is handed to
    # ``parser`` instead of being detected; ``context`` reaches it as ``conn_context``

    inspecting: bool  # parsers call ``inspect`` only when this is true (building buffers costs time)

    def inspect(self, conn: Conn, is_orig: bool, ts: float, tx: int, buffers: dict[str, bytes]) -> None: ...
    # the inspection buffers of one message, by sticky-buffer name; is_orig: the message went to the server


class Parser:
    """Base of every protocol parser. Subclasses set the class attributes and override methods."""

    service: ClassVar[str] = ""  # Zeek's service name for conn.log: dns, http, ssl, ssh, ftp, ...
    transport: ClassVar[str] = "tcp"  # "tcp" or "udp"
    logs: ClassVar[dict[str, LogFields]] = {}  # the logs this parser writes, with their fields
    ports: ClassVar[frozenset[int]] = frozenset()  # well-known ports: a hint for detection only
    wants_data: bool = True  # false once no later bytes can change what the parser reports

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        self.conn = conn
        self.out = out
        self.conn_context = conn_context or {}
        self.redetect = False

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        """True if ``data`` (the first payload bytes seen in one direction) starts this protocol."""
        return False

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        pass

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        pass

    def end(self, ts: float) -> None:
        pass


class ListOutput:
    """An Output that keeps everything in lists: for tests and for tools that parse one stream."""

    def __init__(self, inspecting: bool = False) -> None:
        self.inspecting = inspecting
        self.inspected: list[dict] = []
        self.records: list[tuple[str, dict]] = []
        self.credentials: list[dict] = []
        self.files: list[dict] = []
        self.names: list[tuple[str, str, str]] = []
        self.macs: list[tuple[str, str, str]] = []
        self.expected: list[dict] = []

    def log(self, name: str, record: dict, conn: Conn) -> None:
        self.records.append((name, {**conn.ident(), "proto": conn.proto, **record}))

    def credential(self, conn: Conn, *, ts: float, protocol: str, user: str | None,
                   secret: str | None, success: bool | None, note: str | None = None) -> None:
        self.credentials.append({"ts": ts, **conn.ident(), "protocol": protocol, "user": user,
                                 "secret": secret, "success": success, "note": note})

    def file(self, conn: Conn, *, ts: float, data: bytes, is_orig: bool, source: str,
             filename: str | None = None, mime_type: str | None = None,
             total_bytes: int | None = None, missing_bytes: int = 0,
             piece: tuple[str, int] | None = None) -> str:
        fuid = f"F{len(self.files)}" if piece is None else f"F-{piece[0]}"
        self.files.append({"fuid": fuid, "ts": ts, "data": data, "is_orig": is_orig, "source": source,
                           "filename": filename, "mime_type": mime_type, "total_bytes": total_bytes,
                           "missing_bytes": missing_bytes, "piece": piece})
        return fuid

    def name(self, addr: str, name: str, *, ts: float, source: str) -> None:
        self.names.append((addr, name, source))

    def mac(self, addr: str, mac: str, *, ts: float, source: str) -> None:
        self.macs.append((addr, mac, source))

    def expect(self, conn: Conn, *, orig_h: str | None, resp_h: str, resp_p: int,
               parser: type[Parser], context: dict, ts: float) -> None:
        self.expected.append({"orig_h": orig_h, "resp_h": resp_h, "resp_p": resp_p,
                              "parser": parser, "context": context, "ts": ts})

    def inspect(self, conn: Conn, is_orig: bool, ts: float, tx: int, buffers: dict[str, bytes]) -> None:
        self.inspected.append({"ts": ts, **conn.ident(), "is_orig": is_orig, "tx": tx, "buffers": buffers})

    def logs(self, name: str) -> list[dict]:
        return [r for n, r in self.records if n == name]
