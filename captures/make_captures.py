#!/usr/bin/env python3
"""Build Wiretrail's sample captures, byte for byte the same on every run.

    make_captures.py [--out DIR]   write every capture (default: this folder)
    make_captures.py --check       rebuild into a temporary folder; exit 1 if a shipped file differs

Everything that could vary is fixed: timestamps (integer microseconds), TCP initial sequence
numbers, IP ids, MAC addresses, TTLs and windows. Payloads are literal text or "noise" from
SHA-256 in counter mode (encrypted-looking, and stable across Python versions). Application
messages (DNS, TLS records) are built by hand below so their lengths can be counted by hand; scapy
only builds the headers (Ethernet, 802.1Q, MPLS, IPv4, IPv6, TCP, UDP, ICMP) and writes classic
pcap files (little-endian, microsecond timestamps, linktype 1).

Each capture's expected flows are in ``<name>.expected.json``, derived by hand (see README.md);
this script never writes them.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scapy.contrib.mpls import MPLS
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter

HERE = Path(__file__).resolve().parent
US = 1_000_000  # microseconds per second


# --- building blocks ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Host:
    """An address as seen on the capture link: hosts outside the LAN appear behind the router's MAC."""

    ip: str
    mac: str
    ttl: int = 64


Framing = Callable[[Host, Host, Packet], Packet]


def ethernet(src: Host, dst: Host, l3: Packet) -> Packet:
    return Ether(src=src.mac, dst=dst.mac) / l3


def vlan(vid: int) -> Framing:
    return lambda src, dst, l3: Ether(src=src.mac, dst=dst.mac) / Dot1Q(vlan=vid) / l3


def qinq(outer: int, inner: int) -> Framing:
    return lambda src, dst, l3: Ether(src=src.mac, dst=dst.mac) / Dot1AD(vlan=outer) / Dot1Q(vlan=inner) / l3


def mpls(label: int) -> Framing:
    return lambda src, dst, l3: Ether(src=src.mac, dst=dst.mac) / MPLS(label=label, s=1, ttl=64) / l3


def noise(seed: str, n: int) -> bytes:
    """``n`` encrypted-looking bytes, the same on every platform (SHA-256 in counter mode)."""
    out = b"".join(hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(n // 32 + 1))
    return out[:n]


def at(seconds: float) -> int:
    """A time in whole microseconds (the pcap's resolution), so no float rounding sneaks in."""
    return round(seconds * US)


class Capture:
    """Frames in time order, with per-host IP id counters; written as one classic pcap file."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self._ip_id: dict[str, int] = {}

    def ip_id(self, src: str) -> int:
        ident = self._ip_id.setdefault(src, (0x1000 * (len(self._ip_id) + 1)) & 0xFFFF)
        self._ip_id[src] = (ident + 1) & 0xFFFF
        return ident

    def ip(self, src: Host, dst: Host, **kw) -> Packet:
        """The network header: IPv6 when the source address is IPv6, else IPv4 with the next IP id."""
        if ":" in src.ip:
            return IPv6(src=src.ip, dst=dst.ip, hlim=src.ttl, fl=0, **kw)
        return IP(src=src.ip, dst=dst.ip, ttl=src.ttl, id=self.ip_id(src.ip), **kw)

    def add(self, t_us: int, frame: Packet | bytes) -> None:
        if self.frames and t_us < self.frames[-1][0]:
            raise ValueError(f"frame at {t_us} us is earlier than the one before it")
        self.frames.append((t_us, bytes(frame)))

    def write(self, path: Path) -> None:
        w = PcapWriter(str(path), linktype=1, endianness="<", nano=False, snaplen=65535)
        try:
            w.write_header(None)  # write_packet() alone would leave the file header out
            for t_us, frame in self.frames:
                w.write_packet(frame, sec=t_us // US, usec=t_us % US)
        finally:
            w.close()


C, S = "client", "server"


class TcpConn:
    """One TCP connection. Tracks both sides' next sequence numbers so every segment carries the
    right seq and ack; ``send`` emits one segment, each ``half_rtt`` after a segment the other way
    (or ``gap`` after one in the same direction). SYNs carry an MSS option (4 bytes), nothing else
    has options: a bare segment is 40 bytes of IPv4 (60 of IPv6), a SYN 44 (64)."""

    def __init__(self, cap: Capture, t_us: int, client: Host, cport: int, server: Host, sport: int, *,
                 isn_c: int, isn_s: int, half_rtt: float = 0.0002, gap: float = 0.0001,
                 framing: Framing = ethernet) -> None:
        self.cap, self.t = cap, t_us
        self.host = {C: client, S: server}
        self.port = {C: cport, S: sport}
        self.nxt = {C: isn_c, S: isn_s}
        self.half_rtt, self.gap = at(half_rtt), at(gap)
        self.framing = framing
        self.last_side: str | None = None
        self.window = {C: 64240, S: 65160}

    @staticmethod
    def other(side: str) -> str:
        return S if side == C else C

    def send(self, side: str, flags: str, data: bytes = b"", *, seq: int | None = None,
             ack: int | None = None, after: float | None = None) -> None:
        peer = self.other(side)
        if after is not None:
            self.t += at(after)
        elif self.last_side is not None:
            self.t += self.gap if side == self.last_side else self.half_rtt
        seq = self.nxt[side] if seq is None else seq
        if "A" not in flags:
            ack = 0
        elif ack is None:
            ack = self.nxt[peer]
        src, dst = self.host[side], self.host[peer]
        opts = [("MSS", 1440 if ":" in src.ip else 1460)] if "S" in flags else []
        tcp = TCP(sport=self.port[side], dport=self.port[peer], seq=seq, ack=ack, flags=flags,
                  window=self.window[side], options=opts)
        ip = self.cap.ip(src, dst) if ":" in src.ip else self.cap.ip(src, dst, flags="DF")
        self.cap.add(self.t, self.framing(src, dst, ip / tcp / data if data else ip / tcp))
        if "R" not in flags:
            self.nxt[side] = seq + len(data) + ("S" in flags) + ("F" in flags)
        self.last_side = side

    def handshake(self) -> None:
        self.send(C, "S")
        self.send(S, "SA")
        self.send(C, "A")

    def stream(self, side: str, data: bytes, *, mss: int = 1460, ack_every: int = 2) -> None:
        """Send ``data`` in MSS-sized segments (PSH on the last); the peer acks every
        ``ack_every`` segments and after the last one."""
        chunks = [data[i:i + mss] for i in range(0, len(data), mss)]
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            self.send(side, "PA" if last else "A", chunk)
            if last or (i + 1) % ack_every == 0:
                self.send(self.other(side), "A")

    def close(self, first: str = C) -> None:
        """FIN from ``first``, FIN from the other side, last ACK from ``first``."""
        self.send(first, "FA")
        self.send(self.other(first), "FA")
        self.send(first, "A")


def udp(cap: Capture, t_us: int, src: Host, sport: int, dst: Host, dport: int, data: bytes,
        framing: Framing = ethernet) -> None:
    cap.add(t_us, framing(src, dst, cap.ip(src, dst) / UDP(sport=sport, dport=dport) / data))


# --- application messages, built by hand so their lengths are plain to count -------------------

def dns_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\x00"


def dns_query(txid: int, name: str, qtype: int) -> bytes:
    """Header (12) + name (len + 2) + type and class (4)."""
    return struct.pack("!6H", txid, 0x0100, 1, 0, 0, 0) + dns_name(name) + struct.pack("!2H", qtype, 1)


def dns_answer(txid: int, name: str, qtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    """The query echoed (flags 0x8180) + one answer: pointer to the question name (2) + type,
    class, TTL, rdlength (10) + rdata."""
    question = dns_name(name) + struct.pack("!2H", qtype, 1)
    answer = b"\xc0\x0c" + struct.pack("!2HIH", qtype, 1, ttl, len(rdata)) + rdata
    return struct.pack("!6H", txid, 0x8180, 1, 1, 0, 0) + question + answer


A, AAAA = 1, 28


def ipv4(addr: str) -> bytes:
    return bytes(int(x) for x in addr.split("."))


def tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    """Record header (5): content type, legacy version, length."""
    return struct.pack("!BHH", ctype, version, len(body)) + body


def tls_client_hello(sni: str) -> bytes:
    """A TLS 1.3 ClientHello in one record: server_name, supported_versions, supported_groups,
    signature_algorithms, key_share (x25519)."""
    name = sni.encode()

    def ext(etype: int, body: bytes) -> bytes:
        return struct.pack("!2H", etype, len(body)) + body

    exts = b"".join([
        ext(0x0000, struct.pack("!HBH", len(name) + 3, 0, len(name)) + name),
        ext(0x002B, b"\x04\x03\x04\x03\x03"),
        ext(0x000A, struct.pack("!3H", 4, 0x001D, 0x0017)),
        ext(0x000D, struct.pack("!5H", 8, 0x0403, 0x0804, 0x0401, 0x0503)),
        ext(0x0033, struct.pack("!3H", 36, 0x001D, 32) + noise("tls-keyshare-c", 32)),
    ])
    suites = struct.pack("!7H", 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030)
    body = (b"\x03\x03" + noise("tls-random-c", 32) + b"\x20" + noise("tls-session", 32)
            + struct.pack("!H", len(suites)) + suites + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    return tls_record(0x16, b"\x01" + len(body).to_bytes(3, "big") + body, version=0x0301)


def tls_server_flight() -> bytes:
    """ServerHello + ChangeCipherSpec + the encrypted rest of the server's handshake."""
    exts = (struct.pack("!2HH", 0x002B, 2, 0x0304)
            + struct.pack("!2H2H", 0x0033, 36, 0x001D, 32) + noise("tls-keyshare-s", 32))
    body = (b"\x03\x03" + noise("tls-random-s", 32) + b"\x20" + noise("tls-session", 32)
            + struct.pack("!HB", 0x1301, 0) + struct.pack("!H", len(exts)) + exts)
    hello = tls_record(0x16, b"\x02" + len(body).to_bytes(3, "big") + body)
    return hello + tls_record(0x14, b"\x01") + tls_record(0x17, noise("tls-server-hs", 1180))


# --- demo.pcap: a small breach story ------------------------------------------------------------

DEMO_T0 = 1_710_406_800  # 2024-03-14T09:00:00Z
ROUTER = "02:00:0a:00:00:01"
ALICE = Host("10.0.0.21", "02:00:0a:00:00:15")
BOB = Host("10.0.0.22", "02:00:0a:00:00:16")
CAROL = Host("10.0.0.23", "02:00:0a:00:00:17")
SERVER = Host("10.0.0.10", "02:00:0a:00:00:0a")
WEB = Host("192.0.2.80", ROUTER, ttl=52)
SHOP = Host("192.0.2.143", ROUTER, ttl=52)
ATTACKER = Host("203.0.113.66", ROUTER, ttl=49)
EXFIL = Host("198.51.100.23", ROUTER, ttl=55)

UA_FIREFOX = b"Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0"


def demo_t(seconds: float) -> int:
    return at(DEMO_T0 + seconds)


def dns_lookup(cap: Capture, t: float, client: Host, cport: int, txid: int, name: str, addr: str) -> None:
    """A query to the LAN's resolver (the server) and its answer 1.5 ms later."""
    udp(cap, demo_t(t), client, cport, SERVER, 53, dns_query(txid, name, A))
    udp(cap, demo_t(t + 0.0015), SERVER, 53, client, cport, dns_answer(txid, name, A, ipv4(addr)))


def http_get(cap: Capture, t: float) -> None:
    """Alice browses www.example.com: GET with Host and User-Agent, a small page, FIN teardown."""
    request = (b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: " + UA_FIREFOX
               + b"\r\nAccept: text/html\r\n\r\n")
    page = b"<html><head><title>Example</title></head><body><p>Hello.</p></body></html>\n"
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: "
                + str(len(page)).encode() + b"\r\n\r\n" + page)
    c = TcpConn(cap, demo_t(t), ALICE, 49200, WEB, 80, isn_c=1_100_000, isn_s=2_100_000, half_rtt=0.012)
    c.handshake()
    c.stream(C, request, ack_every=1)
    c.stream(S, response, ack_every=1)
    c.close(C)


def tls_session(cap: Capture, t: float) -> None:
    """Bob opens https://secure.example.com: ClientHello with SNI, the server's flight, one
    encrypted request and reply, FIN teardown."""
    c = TcpConn(cap, demo_t(t), BOB, 49300, SHOP, 443, isn_c=1_200_000, isn_s=2_200_000, half_rtt=0.015)
    c.handshake()
    c.send(C, "PA", tls_client_hello("secure.example.com"))
    c.send(S, "PA", tls_server_flight())
    c.send(C, "PA", tls_record(0x14, b"\x01") + tls_record(0x17, noise("tls-client-fin", 53))
           + tls_record(0x17, noise("tls-request", 310)))
    c.send(S, "PA", tls_record(0x17, noise("tls-response", 1200)))
    c.send(C, "A")
    c.close(C)


def ssh_session(cap: Capture, t: float) -> None:
    """Alice logs in to the server over SSH: banners, then encrypted-looking packets each way."""
    c = TcpConn(cap, demo_t(t), ALICE, 50022, SERVER, 22, isn_c=1_300_000, isn_s=2_300_000)
    c.handshake()
    c.send(S, "PA", b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u2\r\n")
    c.send(C, "PA", b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n")
    for i, (from_client, from_server) in enumerate([(1024, 1104), (48, 256), (112, 64), (96, 432)]):
        c.send(C, "PA", noise(f"ssh-c{i}", from_client), after=0.05)
        c.send(S, "PA", noise(f"ssh-s{i}", from_server))
    c.send(C, "A")
    c.close(C)


def phishing_post(cap: Capture, t: float) -> None:
    """Carol submits her password to a look-alike login page on the attacker's host."""
    form = b"username=carol&password=Winter2024%21&login=Sign+in"
    request = (b"POST /owa/auth.php HTTP/1.1\r\nHost: mail-examplecorp.com\r\nUser-Agent: " + UA_FIREFOX
               + b"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: "
               + str(len(form)).encode() + b"\r\n\r\n" + form)
    response = b"HTTP/1.1 302 Found\r\nLocation: https://mail.example.com/owa/\r\nContent-Length: 0\r\n\r\n"
    c = TcpConn(cap, demo_t(t), CAROL, 49400, ATTACKER, 80, isn_c=1_400_000, isn_s=2_400_000,
                half_rtt=0.031)
    c.handshake()
    c.stream(C, request, ack_every=1)
    c.stream(S, response, ack_every=1)
    c.close(C)


SCAN = [(21, "open"), (22, "filtered"), (23, "closed"), (25, "closed"), (80, "closed"), (443, "filtered"),
        (3389, "filtered")]


def port_scan(cap: Capture, t: float) -> None:
    """A SYN scan from the attacker: closed ports answer RST (REJ), filtered ones stay silent (S0),
    the open FTP port answers SYN-ACK and the scanner resets it (RSTO)."""
    for i, (port, status) in enumerate(SCAN):
        c = TcpConn(cap, demo_t(t + i * 0.002), ATTACKER, 45123, SERVER, port,
                    isn_c=3_000_000 + i * 1000, isn_s=2_500_000 + i * 1000, half_rtt=0.0003)
        c.send(C, "S")
        if status == "closed":
            c.send(S, "RA", seq=0)
        elif status == "open":
            c.send(S, "SA")
            c.send(C, "R")


def ftp_login(cap: Capture, t: float) -> None:
    """The attacker logs in to the server's FTP with Carol's phished password, in cleartext."""
    c = TcpConn(cap, demo_t(t), ATTACKER, 45200, SERVER, 21, isn_c=1_500_000, isn_s=2_600_000,
                half_rtt=0.0003)
    c.handshake()
    c.send(S, "PA", b"220 (vsFTPd 3.0.3)\r\n")
    for command, reply in [(b"USER carol\r\n", b"331 Please specify the password.\r\n"),
                           (b"PASS Winter2024!\r\n", b"230 Login successful.\r\n"),
                           (b"SYST\r\n", b"215 UNIX Type: L8\r\n"),
                           (b"QUIT\r\n", b"221 Goodbye.\r\n")]:
        c.send(C, "PA", command, after=0.4)
        c.send(S, "PA", reply)
    c.close(S)


def ping(cap: Capture, t: float) -> None:
    """Carol checks that the exfil host is reachable: one echo request and its reply."""
    data = bytes(8) + bytes(range(0x08, 0x38))  # 56 bytes, as Linux ping sends
    echo = dict(id=0x4A31, seq=1)
    cap.add(demo_t(t), ethernet(CAROL, EXFIL, cap.ip(CAROL, EXFIL) / ICMP(type=8, **echo) / data))
    cap.add(demo_t(t + 0.041), ethernet(EXFIL, CAROL, cap.ip(EXFIL, CAROL) / ICMP(type=0, **echo) / data))


EXFIL_BODY = 102_400


def exfil_upload(cap: Capture, t: float) -> None:
    """What left the network: Carol's machine POSTs a 100 KiB archive to the exfil host."""
    request = (b"POST /upload/q1-finance.7z HTTP/1.1\r\nHost: files.backup-sync.net\r\n"
               b"User-Agent: python-requests/2.31.0\r\nContent-Type: application/octet-stream\r\n"
               b"Content-Length: " + str(EXFIL_BODY).encode() + b"\r\n\r\n" + noise("exfil", EXFIL_BODY))
    response = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    c = TcpConn(cap, demo_t(t), CAROL, 49500, EXFIL, 80, isn_c=1_600_000, isn_s=2_700_000,
                half_rtt=0.020, gap=0.0002)
    c.handshake()
    c.stream(C, request, ack_every=2)
    c.stream(S, response, ack_every=1)
    c.close(C)


def demo() -> Capture:
    cap = Capture()
    dns_lookup(cap, 0.0, ALICE, 53001, 0x1A01, "www.example.com", WEB.ip)
    http_get(cap, 0.2)
    dns_lookup(cap, 12.0, BOB, 53002, 0x1A02, "secure.example.com", SHOP.ip)
    tls_session(cap, 12.2)
    ssh_session(cap, 30.0)
    dns_lookup(cap, 45.0, CAROL, 53003, 0x1A03, "mail-examplecorp.com", ATTACKER.ip)
    phishing_post(cap, 45.2)
    port_scan(cap, 70.0)
    ftp_login(cap, 95.0)
    ping(cap, 130.0)
    dns_lookup(cap, 150.0, CAROL, 53004, 0x1A04, "files.backup-sync.net", EXFIL.ip)
    exfil_upload(cap, 150.2)
    return cap


# --- tcp_states.pcap: one connection per Zeek conn_state ---------------------------------------

STATES_T0 = 1_710_410_400  # 2024-03-14T10:00:00Z
ST_CLIENT = Host("192.168.50.10", "02:00:c0:a8:32:0a")
ST_SERVER = Host("192.168.50.20", "02:00:c0:a8:32:14")
REQ = b"GET / HTTP/1.0\r\n\r\n"  # 18 bytes
RESP = b"HTTP/1.0 204 No Content\r\n\r\n"  # 27 bytes


def state_conn(cap: Capture, n: int) -> TcpConn:
    """Scenario ``n``: client port 40000+n to the server's port 80, starting 20 s after the last."""
    return TcpConn(cap, at(STATES_T0 + 20 * n), ST_CLIENT, 40000 + n, ST_SERVER, 80,
                   isn_c=100_000 * (n + 1), isn_s=5_000_000 + 100_000 * (n + 1))


def st_s0(c: TcpConn) -> None:
    c.send(C, "S")


def st_s1(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "PA", RESP)
    c.send(C, "A")


def st_sf(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "PA", RESP)
    c.close(C)


def st_rej(c: TcpConn) -> None:
    c.send(C, "S")
    c.send(S, "RA", seq=0)


def st_s2(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "A")
    c.send(C, "FA")


def st_s3(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "PA", RESP)
    c.send(C, "A")
    c.send(S, "FA")


def st_rsto(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "PA", RESP)
    c.send(C, "R")


def st_rstr(c: TcpConn) -> None:
    c.handshake()
    c.send(C, "PA", REQ)
    c.send(S, "R")


def st_rstos0(c: TcpConn) -> None:
    c.send(C, "S")
    c.send(C, "R", after=0.5)


def st_rstrh(c: TcpConn) -> None:
    # The client's SYN is never seen: the capture starts with the server's SYN-ACK.
    c.nxt[C] += 1
    c.send(S, "SA")
    c.send(S, "R", after=0.5)


def st_sh(c: TcpConn) -> None:
    c.send(C, "S")
    c.send(C, "F", after=0.5)


def st_shr(c: TcpConn) -> None:
    c.nxt[C] += 1
    c.send(S, "SA")
    c.send(S, "FA", after=0.5)


def st_oth(c: TcpConn) -> None:
    # Midstream: the handshake happened before the capture started.
    c.nxt[C] += 1
    c.nxt[S] += 1
    c.send(C, "PA", REQ)
    c.send(S, "PA", RESP)
    c.send(C, "A")


STATE_SCENARIOS = [st_s0, st_s1, st_sf, st_rej, st_s2, st_s3, st_rsto, st_rstr, st_rstos0, st_rstrh,
                   st_sh, st_shr, st_oth]


def tcp_states() -> Capture:
    cap = Capture()
    for n, scenario in enumerate(STATE_SCENARIOS):
        scenario(state_conn(cap, n))
    return cap


# --- encap.pcap: one exchange, many wrappings ---------------------------------------------------

ENCAP_T0 = 1_710_414_000  # 2024-03-14T11:00:00Z
ENCAP_REQ = b"GET /encap HTTP/1.1\r\nHost: encap.test\r\n\r\n"  # 41 bytes
ENCAP_RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"  # 43 bytes


def encap_host(ip: str, n: int) -> Host:
    return Host(ip, f"02:00:00:00:14:{n:02x}")


def small_exchange(cap: Capture, t: float, client: Host, cport: int, server: Host, framing: Framing,
                   isn: int) -> None:
    """Handshake, one request, one reply, FIN / FIN / ACK: 8 segments."""
    c = TcpConn(cap, at(ENCAP_T0 + t), client, cport, server, 80, isn_c=isn, isn_s=isn + 7_000_000,
                framing=framing)
    c.handshake()
    c.send(C, "PA", ENCAP_REQ)
    c.send(S, "PA", ENCAP_RESP)
    c.close(C)


def encap_tcp(cap: Capture) -> None:
    variants = [("10.20.0", ethernet), ("10.20.1", vlan(101)), ("10.20.2", qinq(200, 202)),
                ("10.20.3", mpls(3003))]
    for i, (net, framing) in enumerate(variants):
        small_exchange(cap, 20.0 * i, encap_host(f"{net}.1", 2 * i + 1), 41001 + i,
                       encap_host(f"{net}.2", 2 * i + 2), framing, isn=10_000_000 * (i + 1))
    small_exchange(cap, 80.0, encap_host("2001:db8:20::1", 9), 41005, encap_host("2001:db8:20::2", 10),
                   ethernet, isn=50_000_000)


def encap_dns6(cap: Capture) -> None:
    client, resolver = encap_host("2001:db8:20::1", 9), encap_host("2001:db8:20::53", 11)
    txid, name = 0x2B01, "encap.test"
    udp(cap, at(ENCAP_T0 + 100.0), client, 53535, resolver, 53, dns_query(txid, name, AAAA))
    aaaa = bytes.fromhex("20010db8002000000000000000000002")  # 2001:db8:20::2
    udp(cap, at(ENCAP_T0 + 100.0008), resolver, 53, client, 53535, dns_answer(txid, name, AAAA, aaaa))


FRAG_PAYLOAD = 3000


def encap_fragments(cap: Capture) -> None:
    """One UDP datagram of 3000 payload bytes (IP total length 3028) in three fragments of 1480,
    1480 and 48 data bytes, then a small unfragmented reply."""
    src, dst = encap_host("10.20.9.1", 12), encap_host("10.20.9.2", 13)
    whole = IP(src=src.ip, dst=dst.ip) / UDP(sport=41009, dport=9999) / noise("fragmented", FRAG_PAYLOAD)
    datagram = bytes(whole)[20:]  # UDP header + payload, checksum computed over the whole datagram
    ident = cap.ip_id(src.ip)
    t = at(ENCAP_T0 + 120.0)
    for i, (start, end) in enumerate([(0, 1480), (1480, 2960), (2960, len(datagram))]):
        more = end < len(datagram)
        frag = IP(src=src.ip, dst=dst.ip, ttl=64, id=ident, proto=17, flags="MF" if more else 0,
                  frag=start // 8) / Raw(datagram[start:end])
        cap.add(t + i * 50, ethernet(src, dst, frag))
    udp(cap, t + 1000, dst, 9999, src, 41009, b"got 3000 bytes\r\n")


def encap() -> Capture:
    cap = Capture()
    encap_tcp(cap)
    encap_dns6(cap)
    encap_fragments(cap)
    return cap


# --- command line -------------------------------------------------------------------------------

CAPTURES: dict[str, Callable[[], Capture]] = {
    "demo.pcap": demo,
    "tcp_states.pcap": tcp_states,
    "encap.pcap": encap,
}


def build(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in CAPTURES.items():
        make().write(out / name)
        written.append(out / name)
    return written


def check(shipped: Path) -> str | None:
    """None when every shipped capture equals a fresh build byte for byte, else what differs."""
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        bad = [name for name in CAPTURES if not (shipped / name).exists()
               or not filecmp.cmp(Path(tmp) / name, shipped / name, shallow=False)]
    if bad:
        return (f"{', '.join(bad)} in {shipped} differ from a fresh build; "
                f"run: python {Path(__file__).name} --out {shipped}")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help="folder to write into, or with --check to compare (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="rebuild in a temporary folder and fail if a shipped capture differs")
    args = parser.parse_args(argv)
    if args.check:
        problem = check(args.out)
        if problem:
            print(problem, file=sys.stderr)
            return 1
        print(f"{len(CAPTURES)} captures in {args.out} are reproducible", file=sys.stderr)
        return 0
    for path in build(args.out):
        print(f"{path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
