"""Packets built in code: Ethernet/IPv4 TCP and UDP frames, a TCP handshake and close, pcap files
(through the project's own PcapWriter) and pcapng blocks, so a test shows what it feeds in."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt

from recorder.core.capio.pcapio import PcapWriter

S, SA, A, PA, FA, R = 0x02, 0x12, 0x10, 0x18, 0x11, 0x04
CLI, SRV = "10.0.0.1", "10.0.0.2"
T0 = 1_700_000_000 * 10**9


# -- captures built in code -------------------------------------------------------------------------

def frame(src: str, dst: str, proto: int, l4) -> bytes:
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=l4)
    ip.len = 20 + len(bytes(l4))
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip))


def tcp(src: str, sport: int, dst: str, dport: int, seq: int, flags: int, data: bytes = b"", ack: int = 0) -> bytes:
    return frame(src, dst, 6, dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags,
                                           win=65535, data=data))


def udp(src: str, sport: int, dst: str, dport: int, data: bytes) -> bytes:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = 8 + len(data)
    return frame(src, dst, 17, u)


def write(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    with PcapWriter(path) as w:
        for t, pkt in packets:
            w.write(T0 + int(t * 1e9), pkt)
    return path


def handshake(sport: int = 40000, dport: int = 7000, cisn: int = 1000, sisn: int = 5000, t: float = 0.0):
    return [(t, tcp(CLI, sport, SRV, dport, cisn, S)),
            (t + 0.01, tcp(SRV, dport, CLI, sport, sisn, SA, ack=cisn + 1)),
            (t + 0.02, tcp(CLI, sport, SRV, dport, cisn + 1, A, ack=sisn + 1))]


def close(sport: int, dport: int, cseq: int, sseq: int, t: float):
    return [(t, tcp(CLI, sport, SRV, dport, cseq, FA)), (t + 0.01, tcp(SRV, dport, CLI, sport, sseq, FA)),
            (t + 0.02, tcp(CLI, sport, SRV, dport, cseq + 1, A))]


# -- pcapng blocks (e is the byte order: "<" or ">") ------------------------------------------------

def block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(e: str, major: int = 1) -> bytes:
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, major, 0, -1))


def idb(e: str, linktype: int, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += option(e, 14, struct.pack(e + "q", tsoffset))
    if opts:
        opts += option(e, 0, b"")
    return block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts)


def epb(e: str, iface: int, ticks: int, data: bytes, wirelen: int | None = None) -> bytes:
    head = struct.pack(e + "5I", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) if wirelen is None else wirelen)
    return block(e, 6, head + data)


def tcp_session(path: Path, script: list[tuple[bool, bytes]], *, port: int, sport: int = 40000,
                client: str = "10.0.0.5", server: str = "10.0.0.9", t0: float = 1_700_000_000.0,
                step: float = 0.01, segment: int | None = None, lost: dict[int, int | None] | None = None) -> Path:
    """``script`` (side, bytes; True is the client) as one TCP session built with scapy (handshake,
    the data, FIN both ways), packets ``step`` seconds apart from ``t0``, written to ``path``. Each
    item is one segment, or with ``segment`` as many as it takes at most that long (an empty item
    then sends nothing). ``lost`` maps an item's index to None (its segment left out of the
    capture) or n (its first n bytes left out, the rest sent as a segment of their own); the
    receiver still acknowledges past what was lost, as on a tap that missed packets."""
    from scapy.all import IP, TCP, Ether, wrpcap

    lost = lost or {}
    pkts, seq, t = [], {True: 1000, False: 5000}, t0

    def add(side: bool, flags: str, data: bytes = b"", keep: bool = True) -> None:
        nonlocal t
        src, dst, sp, dp = (client, server, sport, port) if side else (server, client, port, sport)
        p = Ether() / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq[side], ack=seq[not side]) / data
        p.time = t
        t += step
        if keep:
            pkts.append(p)
        seq[side] += len(data) + (1 if "S" in flags or "F" in flags else 0)

    def send(side: bool, data: bytes) -> None:
        if segment is None:
            add(side, "PA", data)
        else:
            for i in range(0, len(data), segment):
                add(side, "PA", data[i:i + segment])

    add(True, "S")
    add(False, "SA")
    add(True, "A")
    for i, (side, data) in enumerate(script):
        if i not in lost:
            send(side, data)
        elif lost[i] is None:
            add(side, "PA", data, keep=False)
        else:
            add(side, "PA", data[:lost[i]], keep=False)
            send(side, data[lost[i]:])
    add(True, "FA")
    add(False, "FA")
    add(True, "A")
    wrpcap(str(path), pkts)
    return path
