"""Deterministic loopback traffic for the live tests (no ../shared needed).

Every address is in 127.0.0.0/8, as anything replayed onto an interface must be. TCP
connections (handshake, data both ways, FIN) and UDP request/response pairs, interleaved.
"""

from __future__ import annotations

import random
import struct

from recorder.core.capio.pcapio import PcapWriter

ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"


def _ipv4(src: int, dst: int, proto: int, payload: bytes, ident: int) -> bytes:
    total = 20 + len(payload)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident & 0xFFFF, 0x4000, 64, proto, 0,
                      struct.pack("!I", src), struct.pack("!I", dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:] + payload


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 5 << 4, flags,
                       65535, 0, 0) + data


def _udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def conversations(rng: random.Random, count: int):
    """Yield lists of (src, dst, proto, l4 bytes) per conversation, in order."""
    for i in range(count):
        client = (127 << 24) | (1 << 16) | rng.randrange(1, 250)
        server = (127 << 24) | (2 << 16) | rng.randrange(1, 20)
        sport = 20000 + i
        if rng.random() < 0.7:
            dport = rng.choice([80, 443, 22, 8080])
            cs, ss = rng.randrange(1 << 32), rng.randrange(1 << 32)
            pk = [(client, server, 6, _tcp(sport, dport, cs, 0, 0x02, b"")),
                  (server, client, 6, _tcp(dport, sport, ss, cs + 1, 0x12, b"")),
                  (client, server, 6, _tcp(sport, dport, cs + 1, ss + 1, 0x10, b""))]
            c, s = cs + 1, ss + 1
            for _ in range(rng.randrange(1, 8)):
                n = rng.randrange(1, 1400)
                pk.append((client, server, 6, _tcp(sport, dport, c, s, 0x18, bytes([65 + i % 26]) * n)))
                c += n
                m = rng.randrange(1, 1400)
                pk.append((server, client, 6, _tcp(dport, sport, s, c, 0x18, bytes([97 + i % 26]) * m)))
                s += m
            pk += [(client, server, 6, _tcp(sport, dport, c, s, 0x11, b"")),
                   (server, client, 6, _tcp(dport, sport, s, c + 1, 0x11, b"")),
                   (client, server, 6, _tcp(sport, dport, c + 1, s + 1, 0x10, b""))]
        else:
            q = rng.randbytes(rng.randrange(20, 60))
            pk = [(client, server, 17, _udp(sport, 53, q)),
                  (server, client, 17, _udp(53, sport, q + rng.randbytes(rng.randrange(16, 300))))]
        yield pk


def write_loopback_capture(path, packets: int, seed: int = 1, start: float = 1_700_000_000.0) -> int:
    """Write about ``packets`` packets of interleaved conversations; returns the exact number."""
    rng = random.Random(seed)
    active: list[list] = []
    convs = conversations(rng, 10**9)
    written = 0
    ident = 0
    t = start
    with PcapWriter(str(path)) as w:
        while written < packets:
            while len(active) < 50:
                active.append(list(next(convs)))
            conv = active[rng.randrange(len(active))]
            src, dst, proto, l4 = conv.pop(0)
            if not conv:
                active.remove(conv)
            ident += 1
            t += 0.0001
            w.write(int(t * 1e9), ETH + _ipv4(src, dst, proto, l4, ident))
            written += 1
    return written


def _dns(qid: int, name: str, answer: bytes | None) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 1, 1)
    if answer is None:
        return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + q
            + struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + answer)


def write_protocol_capture(path, conversations: int = 100, start: float = 1_700_000_000.0,
                           logins: list[tuple[str, str]] | None = None) -> int:
    """DNS lookups and HTTP GETs (real messages, loopback addresses), one after another: for the
    protocol records the recorder writes live. With ``logins`` (user, password), GET i carries
    the i-th (cycled) as HTTP Basic authorization. Returns the number of packets."""
    import base64

    packets: list[tuple[int, int, int, bytes]] = []
    for i in range(conversations):
        client = (127 << 24) | (3 << 16) | (i % 200 + 1)
        server = (127 << 24) | (4 << 16) | (i % 7 + 1)
        name = f"host{i}.example.test"
        sport = 30000 + i
        packets.append((client, server, 17, _udp(sport, 53, _dns(i, name, None))))
        packets.append((server, client, 17, _udp(53, sport, _dns(i, name, bytes([127, 4, 0, i % 7 + 1])))))
        auth = ""
        if logins:
            user, password = logins[i % len(logins)]
            auth = f"Authorization: Basic {base64.b64encode(f'{user}:{password}'.encode()).decode()}\r\n"
        req = (f"GET /files/{i}.txt HTTP/1.1\r\nHost: {name}\r\n{auth}User-Agent: wiretrail-test\r\n\r\n").encode()
        body = f"file {i}\n".encode() * 40
        resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body
        c, s = 1000 * i + 1, 5000 * i + 1
        packets += [(client, server, 6, _tcp(sport, 80, c - 1, 0, 0x02, b"")),
                    (server, client, 6, _tcp(80, sport, s - 1, c, 0x12, b"")),
                    (client, server, 6, _tcp(sport, 80, c, s, 0x10, b"")),
                    (client, server, 6, _tcp(sport, 80, c, s, 0x18, req)),
                    (server, client, 6, _tcp(80, sport, s, c + len(req), 0x18, resp)),
                    (client, server, 6, _tcp(sport, 80, c + len(req), s + len(resp), 0x11, b"")),
                    (server, client, 6, _tcp(80, sport, s + len(resp), c + len(req) + 1, 0x11, b"")),
                    (client, server, 6, _tcp(sport, 80, c + len(req) + 1, s + len(resp) + 1, 0x10, b""))]
    t = start
    with PcapWriter(str(path)) as w:
        for ident, (src, dst, proto, l4) in enumerate(packets):
            t += 0.001
            w.write(int(t * 1e9), ETH + _ipv4(src, dst, proto, l4, ident))
    return len(packets)
