"""Flow identities: canonical keys, Zeek's ICMP port mapping, likely server ports, uid, community_id."""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import struct
import zlib

import numpy as np

V4_MAPPED = 0xFFFF  # bits 32..47 of an IPv4-mapped IPv6 address (::ffff:a.b.c.d)

PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}

# Zeek's ICMP counterparts (ICMP4_counterpart / ICMP6_counterpart): a request/reply pair maps to
# one connection with id.orig_p = type and id.resp_p = the counterpart type; other messages are
# one-way and use the code as id.resp_p.
ICMP4_COUNTERPART = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_COUNTERPART = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 130: 131, 131: 130,
                     139: 140, 140: 139, 144: 145, 145: 144}

# Ports of the analyzers Zeek loads by default (likely_server_ports): they decide which side of a
# connection seen without its handshake is the responder.
LIKELY_SERVER_TCP = frozenset({
    21, 2811, 22, 23, 25, 587, 53, 80, 81, 631, 1080, 3128, 8000, 8080, 8888, 110, 143, 139, 445,
    135, 443, 563, 585, 614, 636, 989, 990, 992, 993, 995, 5223, 5222, 5269, 6666, 6667, 6668, 6669,
    3389, 3306, 502, 20000, 88, 389, 3268, 1883, 5432, 6379, 513, 514, 5900, 5901, 5902, 5903, 5904,
    5905, 2049, 111, 1723, 179, 119, 5060, 5061,
})
LIKELY_SERVER_UDP = frozenset({
    53, 137, 5353, 5355, 67, 123, 4754, 161, 162, 5060, 514, 1812, 1813, 88, 3544, 4789, 6081, 5072,
    2152, 2123, 443, 20000, 69, 111, 2049, 500, 4500, 1701, 47808, 3389, 5246, 5247,
})


# UDP ports where Zeek attaches its DNS analyzer, whose own timer ends a quiet DNS "connection"
# after dns_session_timeout (10 s) instead of the 60 s UDP inactivity timeout.
DNS_UDP_PORTS = frozenset({53, 137, 5353, 5355})


def icmp_ports(proto: int, itype: int, code: int) -> tuple[int, int, bool]:
    """(orig_p, resp_p, one_way) for an ICMP message as Zeek keys it."""
    table = ICMP6_COUNTERPART if proto == 58 else ICMP4_COUNTERPART
    other = table.get(itype)
    if other is None:
        return itype, code, True
    return itype, other, False



@functools.lru_cache(maxsize=65536)
def addr_int(text: str) -> int:
    """An address as the decoder keeps it, one integer (IPv4 as ::ffff:a.b.c.d); ``addr_str``'s inverse.
    Raises ValueError for text that is not an address."""
    a = ipaddress.ip_address(text)
    return (V4_MAPPED << 32 | int(a)) if a.version == 4 else int(a)


def addr_str(a: int) -> str:
    """Text form; IPv4-mapped addresses print as dotted IPv4."""
    if (a >> 32) == V4_MAPPED:
        return str(ipaddress.IPv4Address(a & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(a))




def community_id(proto: int, saddr: int, sport: int, daddr: int, dport: int, one_way: bool = False,
                 seed: int = 0) -> str:
    """Community ID v1 (corelight/community-id-spec): base64 SHA-1 of seed, addresses, proto, ports."""
    if (saddr >> 32) == V4_MAPPED and (daddr >> 32) == V4_MAPPED:
        sb, db = struct.pack("!I", saddr & 0xFFFFFFFF), struct.pack("!I", daddr & 0xFFFFFFFF)
    else:
        sb, db = saddr.to_bytes(16, "big"), daddr.to_bytes(16, "big")
    if not one_way and (sb, sport) > (db, dport):
        sb, db, sport, dport = db, sb, dport, sport
    if proto in _CID_PORTS:
        data = b"".join((struct.pack("!H", seed), sb, db, struct.pack("!BBHH", proto, 0, sport, dport)))
    else:
        data = b"".join((struct.pack("!H", seed), sb, db, struct.pack("!BB", proto, 0)))
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode()


_CID_PORTS = frozenset((6, 17, 1, 58, 132))


_M64 = 0xFFFFFFFFFFFFFFFF
_B62 = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_MIX1, _MIX2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_M1, _M2 = np.uint64(_MIX1), np.uint64(_MIX2)
_B62_TEXT = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on a uint64 array: a fast, well-spread, deterministic hash step."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_columns(*cols: np.ndarray) -> np.ndarray:
    """One uint64 hash per row of the given integer columns (same values, same hash)."""
    with np.errstate(over="ignore"):
        h = np.full(len(cols[0]), 0x9E3779B97F4A7C15, dtype=np.uint64)
        for c in cols:
            h = mix64(h ^ np.asarray(c).astype(np.uint64, copy=False))
    return h


def uids(h: np.ndarray, prefix: str = "C") -> list[str]:
    """Zeek-style uids from 64-bit hashes: the prefix and 11 base62 digits."""
    h = h.astype(np.uint64, copy=True)
    digits = np.empty((len(h), 11), dtype=np.uint8)
    for i in range(10, -1, -1):
        digits[:, i] = _B62[(h % np.uint64(62)).astype(np.intp)]
        h //= np.uint64(62)
    return [prefix + d for d in digits.view("S11").ravel().astype(str).tolist()]


def tunnel_uid(kind: str, a: int, b: int) -> str:
    """The uid of an IP-level tunnel (GRE, IP-in-IP): its kind and the outer address pair."""
    lo, hi = min(a, b), max(a, b)
    cols = [np.array([x], dtype=np.uint64) for x in
            (zlib.crc32(kind.encode()), lo >> 64, lo & 0xFFFFFFFFFFFFFFFF, hi >> 64, hi & 0xFFFFFFFFFFFFFFFF)]
    return uids(hash_columns(*cols))[0]


def canonical_keys(proto: np.ndarray, sh: np.ndarray, sl: np.ndarray, dh: np.ndarray, dl: np.ndarray,
                   sport: np.ndarray, dport: np.ndarray, one_way: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The canonical connection keys of packets, and for each whether its source is the key's
    second endpoint (``swap``): the one key layout the flow meter and the application layer share,
    so conn.log and the protocol logs join on the same uid.

    The key is (n, 6) uint64: (proto << 1 | one_way, a_hi, a_lo, a_port << 16 | b_port, b_hi,
    b_lo) with the lower (address, port) first, unless ``one_way`` (an ICMP message without a
    reply type), which keeps the packet's own direction. Ports are as the caller maps them (the
    meter: ICMP type and code, 0 for other protocols).
    """
    proto, sport, dport = (np.asarray(x).astype(np.int64, copy=False) for x in (proto, sport, dport))
    src_gt = (sh > dh) | ((sh == dh) & ((sl > dl) | ((sl == dl) & (sport > dport))))
    swap = src_gt if one_way is None else src_gt & ~one_way
    k = np.empty((len(proto), 6), dtype=np.uint64)
    k[:, 0] = proto << 1 if one_way is None else (proto << 1) | one_way
    k[:, 1] = np.where(swap, dh, sh)
    k[:, 2] = np.where(swap, dl, sl)
    k[:, 3] = (np.where(swap, dport, sport) << 16) | np.where(swap, sport, dport)
    k[:, 4] = np.where(swap, sh, dh)
    k[:, 5] = np.where(swap, sl, dl)
    return k, swap


def key_hashes(key: np.ndarray) -> np.ndarray:
    """The 64-bit identity of canonical keys ((n, 6), ``canonical_keys``), from which with the
    first packet's time the uid follows (``uids_of``)."""
    return hash_columns(*(key[:, i] for i in range(6)))


def uids_of(key_hash: np.ndarray, start_ns: np.ndarray) -> list[str]:
    """Connection uids from key hashes (``key_hashes``) and first-packet times (ns)."""
    with np.errstate(over="ignore"):
        return uids(mix64(key_hash ^ np.asarray(start_ns).astype(np.uint64, copy=False)))


def uid_of(key_hash: int, start_ns: int) -> str:
    """``uids_of`` for one connection, in plain Python (no array for a single uid)."""
    z = key_hash ^ (start_ns & _M64)
    z = ((z ^ (z >> 30)) * _MIX1) & _M64
    z = ((z ^ (z >> 27)) * _MIX2) & _M64
    z ^= z >> 31
    digits = []
    for _ in range(11):
        z, d = divmod(z, 62)
        digits.append(_B62_TEXT[d])
    return "C" + "".join(reversed(digits))


def connection_uids(key: np.ndarray, start_ns: np.ndarray) -> list[str]:
    """The uids of connections: a hash of each canonical key (``canonical_keys``) and first-packet
    time. The same connection in the same input gets the same uid on every run, offline or live.
    """
    return uids_of(key_hashes(key), start_ns)


def flow_uid(key: tuple, start_ns: int) -> str:
    """connection_uids for one key given as (proto, a, a_port, b, b_port, one_way), a <= b."""
    proto, a, ap, b, bp, w = key
    row = np.array([[proto << 1 | w, a >> 64, a & _M64, ap << 16 | bp, b >> 64, b & _M64]], dtype=np.uint64)
    return connection_uids(row, np.array([start_ns], dtype=np.int64))[0]


# Zeek's Site::private_address_space, local by default (Site::private_address_space_is_local=T).
PRIVATE_NETS = ("10.0.0.0/8", "192.168.0.0/16", "172.16.0.0/12", "100.64.0.0/10", "127.0.0.0/8",
                "fe80::/10", "fc00::/7", "::1/128")


class LocalNets:
    """Membership test for local networks on the 128-bit address integers the meter uses."""

    def __init__(self, nets: list[str] | tuple[str, ...] | None = None, include_private: bool = True) -> None:
        ranges = []
        for text in (list(PRIVATE_NETS) if include_private else []) + list(nets or []):
            net = ipaddress.ip_network(text, strict=False)
            if net.version == 4:
                lo = (V4_MAPPED << 32) | int(net.network_address)
                hi = (V4_MAPPED << 32) | int(net.broadcast_address)
            else:
                lo, hi = int(net.network_address), int(net.broadcast_address)
            ranges.append((lo, hi))
        self.ranges = tuple(ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def contains_halves(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Vectorised membership for addresses given as uint64 (high, low) halves."""
        out = np.zeros(len(hi), dtype=bool)
        for a, b in self.ranges:
            ah, al = np.uint64(a >> 64), np.uint64(a & 0xFFFFFFFFFFFFFFFF)
            bh, bl = np.uint64(b >> 64), np.uint64(b & 0xFFFFFFFFFFFFFFFF)
            ge = (hi > ah) | ((hi == ah) & (lo >= al))
            le = (hi < bh) | ((hi == bh) & (lo <= bl))
            out |= ge & le
        return out

    def __contains__(self, a: int) -> bool:
        for lo, hi in self.ranges:
            if lo <= a <= hi:
                return True
        return False
