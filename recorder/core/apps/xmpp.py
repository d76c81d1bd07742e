"""XMPP (RFC 6120): recognise the stream and hand STARTTLS over to the TLS parser.

Zeek writes no XMPP log by default; its analyzer marks the connection's service ``xmpp`` and,
when the server answers the client's ``<starttls/>`` with ``<proceed
xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>``, hands the rest of the connection to its SSL
analyzer. This parser does the same: once the server's ``proceed`` arrives it sets
``redetect`` and the dispatcher finds TLS in the bytes that follow. Client-to-server (5222)
and server-to-server streams (5269, dialback included) look alike here.

Detection: a stream header (``<stream:stream``, any prefix) at the start of either side, after
an optional ``<?xml ...?>`` declaration; on the XMPP ports the declaration alone is enough.
"""

from __future__ import annotations

import re

from recorder.core.apps.base import Conn, Output, Parser

_LEADING = b" \t\r\n\xef\xbb\xbf"  # whitespace and a UTF-8 byte order mark
_DECL = re.compile(rb"<\?xml[^>]{0,200}\?>\s*")
_STREAM = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?stream[\s>/]")
# the server's STARTTLS go-ahead; the element is the only thing it can be in a stream (a literal
# "<" inside character data is escaped)
_PROCEED = re.compile(rb"<(?:[A-Za-z_][\w.-]{0,30}:)?proceed[\s/>]")
_KEEP = 64  # server bytes kept between deliveries


class XMPP(Parser):
    service = "xmpp"
    transport = "tcp"
    ports = frozenset({5222, 5269})

    def __init__(self, conn: Conn, out: Output, conn_context: dict | None = None) -> None:
        super().__init__(conn, out, conn_context)
        self.tail = b""  # the server's last bytes, to find a tag split across deliveries

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        head = bytes(data[:512]).lstrip(_LEADING)
        m = _DECL.match(head)
        if m:
            rest = head[m.end():]
            if not rest:
                return conn.resp_p in cls.ports
            head = rest
        return _STREAM.match(head) is not None

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if self.redetect or not data:
            return
        if is_orig:
            return  # the client's <starttls/> changes nothing until the server agrees
        text = self.tail + bytes(data)
        self.tail = text[-_KEEP:]
        if _PROCEED.search(text):
            # as Zeek: TLS starts on the server's proceed, with or without a starttls seen first
            self.redetect = True

    def gap(self, is_orig: bool, nbytes: int, ts: float) -> None:
        if not is_orig:
            self.tail = b""
