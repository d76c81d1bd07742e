"""Tiny captures built in code for the behaviour rules: each builder appends packets to a
``Capture`` (time in seconds from T0), ``Capture.write`` sorts them by time into a pcap file.

Addresses: 10.0.0.0/16 is the site (private, so local), 198.51.100.0/24 and 203.0.113.0/24 the
Internet (documentation ranges, not local).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from recorder.core.capio.pcapio import PcapWriter

T0 = 1_714_557_600.0  # 2024-05-01T10:00:00Z
_MAC_A, _MAC_B = "02:00:00:00:00:01", "02:00:00:00:00:02"


@dataclass
class Capture:
    packets: list[tuple[float, bytes]] = field(default_factory=list)

    def add(self, t: float, pkt) -> None:
        self.packets.append((t, bytes(Ether(src=_MAC_A, dst=_MAC_B) / pkt)))

    def write(self, path) -> str:
        w = PcapWriter(str(path))
        for t, data in sorted(self.packets, key=lambda p: p[0]):
            w.write(round((T0 + t) * 1e9), data)
        w.close()
        return str(path)

    # --- TCP ---------------------------------------------------------------------------------

    def session(self, t: float, src: str, dst: str, sport: int, dport: int,
                exchanges: list[tuple[bytes, bytes]] = ((b"hello", b"world"),), gap: float = 0.01) -> float:
        """A full TCP connection (handshake, request/response exchanges, FINs): state SF.
        Returns the time of its last packet."""
        c, s = 1000, 5000
        self.add(t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=c - 1))
        self.add(t + gap, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="SA", seq=s - 1, ack=c))
        self.add(t + 2 * gap, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=c, ack=s))
        t += 3 * gap
        for req, resp in exchanges:
            if req:
                self.add(t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="PA", seq=c, ack=s) / req)
                c += len(req)
                t += gap
            if resp:
                self.add(t, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="PA", seq=s, ack=c) / resp)
                s += len(resp)
                t += gap
        self.add(t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="FA", seq=c, ack=s))
        self.add(t + gap, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="FA", seq=s, ack=c + 1))
        self.add(t + 2 * gap, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="A", seq=c + 1, ack=s + 1))
        return t + 2 * gap

    def upload(self, t: float, src: str, dst: str, sport: int, dport: int, nbytes: int) -> float:
        """A connection whose client sends ``nbytes`` in 1400-byte segments."""
        chunk = b"x" * 1400
        parts = [(chunk[:min(1400, nbytes - i)], b"") for i in range(0, nbytes, 1400)]
        return self.session(t, src, dst, sport, dport, parts + [(b"", b"ok")], gap=0.001)

    def rejected(self, t: float, src: str, dst: str, sport: int, dport: int) -> None:
        """SYN answered by RST: state REJ."""
        self.add(t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=99))
        self.add(t + 0.001, IP(src=dst, dst=src) / TCP(sport=dport, dport=sport, flags="RA", seq=0, ack=100))

    def unanswered(self, t: float, src: str, dst: str, sport: int, dport: int) -> None:
        """A SYN alone: state S0."""
        self.add(t, IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=99))

    # --- UDP / DNS / ICMP -----------------------------------------------------------------------

    def dns(self, t: float, client: str, server: str, name: str, qtype: str = "A", sport: int = 40000,
            qid: int = 1) -> None:
        q = DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
        self.add(t, IP(src=client, dst=server) / UDP(sport=sport, dport=53) / q)
        rr = DNSRR(rrname=name, type="TXT", rdata=["ok"]) if qtype == "TXT" else DNSRR(rrname=name, rdata="192.0.2.1")
        a = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype), an=rr)
        self.add(t + 0.005, IP(src=server, dst=client) / UDP(sport=53, dport=sport) / a)

    def ping(self, t: float, src: str, dst: str, answered: bool = True) -> None:
        self.add(t, IP(src=src, dst=dst) / ICMP(type=8, id=1, seq=1))
        if answered:
            self.add(t + 0.001, IP(src=dst, dst=src) / ICMP(type=0, id=1, seq=1))


# --- application exchanges -------------------------------------------------------------------------

def ftp_login(user: bytes, password: bytes, ok: bool) -> list[tuple[bytes, bytes]]:
    return [(b"", b"220 FTP server ready\r\n"),
            (b"USER " + user + b"\r\n", b"331 Password required\r\n"),
            (b"PASS " + password + b"\r\n", b"230 Logged in\r\n" if ok else b"530 Login incorrect\r\n"),
            (b"QUIT\r\n", b"221 Bye\r\n")]


def http_get(host: str, uri: str = "/", status: bytes = b"200 OK", body: bytes = b"hi",
             auth: bytes | None = None) -> list[tuple[bytes, bytes]]:
    req = f"GET {uri} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n".encode()
    if auth:
        req += b"Authorization: Basic " + auth + b"\r\n"
    resp = b"HTTP/1.1 " + status + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    return [(req + b"\r\n", resp)]


SSH_BANNERS = [(b"SSH-2.0-OpenSSH_9.6\r\n", b"SSH-2.0-OpenSSH_9.2p1 Debian\r\n")]


def random_label(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def normal_office(cap: Capture, rng: random.Random, start: float = 0.0) -> None:
    """An ordinary half hour for two workstations: DNS, web, a mail check, one SSH session, one SMB
    session to the file server, at irregular times."""
    t = start
    names = ["www.example.com", "mail.example.com", "cdn.example.net", "www.wikipedia.org", "api.github.com",
             "updates.example.org", "news.example.co.uk", "static.example.net"]
    sport = 50000
    for i in range(40):
        client = "10.0.0.7" if i % 2 else "10.0.0.8"
        name = names[rng.randrange(len(names))]
        cap.dns(t, client, "10.0.0.53", name, sport=sport, qid=i + 1)
        server = f"198.51.100.{10 + names.index(name)}"
        port = 443 if i % 3 else 80
        cap.session(t + 0.05, client, server, sport + 1, port, http_get(name, body=b"x" * rng.randrange(100, 3000)))
        sport += 2
        t += rng.expovariate(1 / 40)
    cap.session(start + 100, "10.0.0.7", "10.0.0.20", 51000, 22, SSH_BANNERS + [(b"k" * 300, b"k" * 500)])
    cap.session(start + 300, "10.0.0.8", "10.0.0.30", 51001, 445, [(b"s" * 200, b"s" * 900)])


# -- two captures for the replay and alerts tests (and the pytest plugin's) -----------------------

SCAN, SWEEP, BRUTE, CLEARTEXT = 9000001, 9000002, 9000003, 9000008


def build_captures(folder) -> tuple[str, str]:
    """a.pcap: a port scan (10.0.0.66 -> 10.0.0.5) at T0. b.pcap: a host sweep on tcp/445 at
    T0+100 s (10.0.0.77) and six failed FTP logins for six accounts at T0+200 s (10.0.0.99 ->
    10.0.0.6), which raise a brute force (severity 1) and six clear-text credential alerts (one
    per account and pair)."""
    a = Capture()
    for i, port in enumerate(range(1, 41)):
        a.rejected(i * 0.01, "10.0.0.66", "10.0.0.5", 40000 + i, port)
    b = Capture()
    for i in range(30):
        b.unanswered(100 + i * 0.05, "10.0.0.77", f"10.0.1.{i + 1}", 42000 + i, 445)
    for i in range(6):
        b.session(200 + i * 2, "10.0.0.99", "10.0.0.6", 44000 + i, 21, ftp_login(f"user{i}".encode(), f"guess{i}".encode(), ok=False))
    return a.write(folder / "a.pcap"), b.write(folder / "b.pcap")
