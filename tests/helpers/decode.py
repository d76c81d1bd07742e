"""Frames for the decoder's tests, built with scapy (or struct where scapy has no layer): sample
link types, Ethernet encapsulations, non-IP frames and packets to truncate; and decoding a batch
twice (vectorised fast path and per-packet slow path) with the two asserted equal."""

from __future__ import annotations

import struct

import numpy as np
from scapy.compat import raw
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, GRE, LLC, SNAP, CookedLinux, CookedLinuxV2, Dot1AD, Dot1Q, Ether
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN

from recorder.core.batch import DECODED_COLUMNS, DecodedBatch, RawBatch
from recorder.core.decode.decode import Decoder

A4, B4, A6, B6 = "10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"


def make_batch(packets: list[bytes], linktype: int | list[int] = 1, *, wirelens: list[int] | None = None,
               ts: list[int] | None = None) -> RawBatch:
    """A RawBatch holding ``packets`` back to back, with filler bytes around each one."""
    data = bytearray(b"\xee" * 3)
    offs = []
    for p in packets:
        offs.append(len(data))
        data += p + b"\xee" * 5
    n = len(packets)
    lts = linktype if isinstance(linktype, list) else [linktype] * n

    def arr(v):
        return np.array(v, dtype=np.int64)
    return RawBatch("test", bytes(data), arr(offs), arr([len(p) for p in packets]),
                    arr(wirelens if wirelens is not None else [len(p) for p in packets]),
                    arr(ts if ts is not None else [10**18 + i * 1000 for i in range(n)]),
                    arr(lts), arr(offs), np.arange(n, dtype=np.int64))


def assert_same(a: DecodedBatch, b: DecodedBatch) -> None:
    for name, dtype in DECODED_COLUMNS.items():
        assert a.cols[name].dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(a.cols[name], b.cols[name], err_msg=name)
    assert (a.malformed, a.non_ip, a.malformed_examples, a.payloads) == \
        (b.malformed, b.non_ip, b.malformed_examples, b.payloads)


def decode_both(*batches: RawBatch, **kw) -> tuple[list[DecodedBatch], Decoder]:
    """Decode batches with a fast and a slow Decoder; assert they agree; return the fast results."""
    fast, slow = Decoder(fast=True, **kw), Decoder(fast=False, **kw)
    outs = []
    for raw_batch in batches:
        a, b = fast.decode(raw_batch), slow.decode(raw_batch)
        assert_same(a, b)
        assert not any("internal error" in e for e in a.malformed_examples), a.malformed_examples
        outs.append(a)
    assert fast.tunnels == slow.tunnels
    assert fast.stats.internal_errors == slow.stats.internal_errors == 0
    return outs, fast


def tcp4(payload: bytes = b"", **kw):
    return IP(src=A4, dst=B4) / TCP(sport=40000, dport=80, flags="A", **kw) / payload


def eth(inner, etype: int | None = None):
    """An Ethernet frame; for raw bytes the ethertype follows the IP version nibble unless given."""
    if etype is None and isinstance(inner, bytes):
        etype = 0x0800 if inner[0] >> 4 == 4 else 0x86DD
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **({"type": etype} if etype else {})) / inner


CUT_SAMPLES = {
    "ipv4-tcp-options": eth(tcp4(b"data", options=[("MSS", 1460), ("NOP", None), ("WScale", 7)])),
    "ipv6-udp": eth(IPv6(src=A6, dst=B6) / UDP(sport=1, dport=2) / b"d"),
    "vlan-ipv4-icmp": eth(Dot1Q(vlan=3) / IP(src=A4, dst=B4) / ICMP()),
    "gre-ipv4-tcp": eth(IP(src=A4, dst=B4) / GRE() / tcp4()),
    "vxlan": eth(IP(src=A4, dst=B4) / UDP(sport=1111, dport=4789) / VXLAN(vni=1) / eth(tcp4())),
}


def nflog(ip: bytes) -> bytes:
    hdr = bytes([2, 0, 0, 5])
    tlv_prefix = struct.pack("<HH", 8, 1) + b"\x08\x00\x03\x00"  # NFULA_PACKET_HDR
    return hdr + tlv_prefix + struct.pack("<HH", 4 + len(ip), 9) + ip


IP4 = raw(tcp4(b"x"))
IP6 = raw(IPv6(src=A6, dst=B6) / TCP(sport=7, dport=8))
WIFI = {"addr1": "02:00:00:00:00:01", "addr2": "02:00:00:00:00:02", "addr3": "02:00:00:00:00:03"}
LINKTYPES = {
    "null-le": (0, struct.pack("<I", 2) + IP4),
    "null-be": (0, struct.pack(">I", 2) + IP4),
    "null-ipv6": (0, struct.pack("<I", 30) + IP6),
    "loop": (108, struct.pack(">I", 24) + IP6),
    "raw": (101, IP4),
    "raw-12": (12, IP6),
    "raw-14": (14, IP4),
    "ipv4": (228, IP4),
    "ipv6": (229, IP6),
    "sll": (113, raw(CookedLinux(proto=0x0800) / IP4)),
    "sll2": (276, raw(CookedLinuxV2(proto=0x86DD) / IP6)),
    "ppp-hdlc": (9, b"\xff\x03\x00\x21" + IP4),
    "ppp": (9, b"\x00\x57" + IP6),
    "ppp-serial": (50, b"\xff\x03\x00\x21" + IP4),
    "cisco-hdlc": (104, b"\x0f\x00\x08\x00" + IP4),
    "802.11": (105, raw(Dot11(type=2, subtype=0, FCfield=1, **WIFI) / LLC() / SNAP(code=0x0800) / IP4)),
    "802.11-qos-4addr": (105, raw(Dot11(type=2, subtype=8, FCfield=3, addr4="02:00:00:00:00:04",
                                        **WIFI) / Dot11QoS() / LLC() / SNAP(code=0x86DD) / IP6)),
    "radiotap": (127, raw(RadioTap() / Dot11(type=2, **WIFI) / LLC() / SNAP(code=0x0800) / IP4)),
    "nflog": (239, nflog(IP4)),
}


NON_IP = {
    "arp": (1, eth(ARP())),
    "lldp": (1, eth(b"\x02\x07\x04" + b"\x00" * 40, etype=0x88CC)),
    "stp-llc": (1, b"\x01\x80\xc2\x00\x00\x00" + b"\x02" * 6 + struct.pack(">H", 38) + b"\x42\x42\x03" + b"\x00" * 35),
    "mpls-multicast": (1, eth(MPLS(s=1) / IP4, etype=0x8848)),  # Zeek decodes 0x8847 only
    "pppoe-discovery": (1, eth(PPPoE(code=9) / b"\x01\x01\x00\x00", etype=0x8863)),
    "pppoe-lcp": (1, eth(PPPoE(sessionid=1) / PPP(proto=0xC021) / b"\x01\x01\x00\x04", etype=0x8864)),
    "802.11-beacon": (105, raw(Dot11(type=0, subtype=8, **WIFI) / (b"\x00" * 40))),
    "nflog-arp": (239, bytes([7, 0, 0, 5]) + struct.pack("<HH", 4 + len(IP4), 9) + IP4),
    "unknown-linktype": (147, IP4),
}


def vntag(inner: bytes) -> bytes:
    return b"\x00\x00\x01\x02" + b"\x81\x00" + b"\x00\x0b\x08\x00" + inner  # VN-Tag, then a VLAN tag


ENCAPS = {
    "802.1q": eth(Dot1Q(vlan=5, type=0x0800) / IP4),
    "qinq-88a8": eth(Dot1AD(vlan=5) / Dot1Q(vlan=6, type=0x0800) / IP4),
    "qinq-9100": eth(Dot1Q(vlan=5, type=0x8100) / Dot1Q(vlan=6, type=0x0800) / IP4, etype=0x9100),
    "vlan-vntag-vlan": eth(Dot1Q(vlan=250, type=0x8926) / vntag(IP4)),
    "mpls": eth(MPLS(label=16, s=0) / MPLS(label=17, s=1) / IP4, etype=0x8847),
    "mpls-in-vlan": eth(Dot1Q(vlan=5, type=0x8847) / MPLS(s=1) / IP6),
    "pppoe": eth(PPPoE(sessionid=1) / PPP(proto=0x0021) / IP4, etype=0x8864),
    "pppoe-ipv6-qinq": eth(Dot1AD(vlan=1) / Dot1Q(vlan=2, type=0x8864) / PPPoE(sessionid=1) / PPP(proto=0x0057) / IP6),
    "vntag": eth(vntag(IP4), etype=0x8926),
    "fabricpath": b"\x02" * 6 + b"\x04" * 6 + b"\x89\x03" + b"\x00\x01" + raw(eth(IP4)),
    "pbb": eth(b"\x00\x00\x00\x01" + b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + IP4, etype=0x88E7),
    "802.3-snap": (b"\x02" * 6 + b"\x04" * 6 + struct.pack(">H", 8 + len(IP4)) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
                   + IP4),
    "vlan-802.3-snap": eth(Dot1Q(vlan=1, type=8 + len(IP4)) / (b"\xaa\xaa\x03\x00\x00\x00\x08\x00" + IP4)),
}
