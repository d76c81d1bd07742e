"""DNS messages built byte by byte: names, questions, resource records, whole messages."""

from __future__ import annotations

import struct


def qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\0"


def rr(name: bytes, rtype: int, rdata: bytes, ttl: int = 300, rclass: int = 1) -> bytes:
    return name + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def message(tid: int, flags: int, questions: list[bytes], answers: list[bytes] = (), auth: list[bytes] = (),
            addl: list[bytes] = ()) -> bytes:
    return (struct.pack("!HHHHHH", tid, flags, len(questions), len(answers), len(auth), len(addl))
            + b"".join(questions) + b"".join(answers) + b"".join(auth) + b"".join(addl))


def question(name: str, qtype: int = 1, qclass: int = 1) -> bytes:
    return qname(name) + struct.pack("!HH", qtype, qclass)


PTR_Q = b"\xc0\x0c"  # compression pointer to the question name
QUERY, RESPONSE = 0x0100, 0x8180
