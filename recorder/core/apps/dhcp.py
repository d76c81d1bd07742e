"""DHCP (RFC 2131/2132) over UDP 67/68: which machine had which address, by MAC and host name.

An investigator who has an address and a time needs the machine: the server's ACK binds the
client's hardware address (``chaddr``) to the address it leases (``yiaddr``, or ``ciaddr`` when
the client already had one), reported as ``mac(...)``; the client names itself in option 12
(host name) or 81 (client FQDN), reported as ``name(...)`` for that address, source ``dhcp``.

One exchange spans connections (the client broadcasts from 0.0.0.0, the server answers to the
offered address or to the broadcast address), so the names a client gave are kept by
(transaction id, hardware address) until its ACK, across connections, in a bounded table
(Zeek's DHCP analysis joins messages by transaction id the same way). A DHCPINFORM comes from a
client already holding its address: its names and MAC bind to ``ciaddr`` at once.

The connection's ``service`` is ``dhcp``, as in Zeek's conn.log. No dhcp.log is written yet.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict

from recorder.core.apps.base import Conn, Parser

MAGIC = b"\x63\x82\x53\x63"
FIXED = 240  # the BOOTP header and the magic cookie; options follow
DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)
MAX_PENDING = 4096  # client names awaiting their ACK, across connections
MAX_NAME = 255


def _name(raw: bytes) -> str | None:
    text = raw.split(b"\0", 1)[0].decode("ascii", "replace").strip().rstrip(".")
    if not text or any(not ch.isprintable() or ch.isspace() for ch in text):
        return None
    return text[:MAX_NAME]


def _fqdn(raw: bytes) -> str | None:
    """Option 81: flags, two obsolete rcodes, then the name (DNS wire format when flag E is set)."""
    if len(raw) < 4:
        return None
    name = raw[3:]
    if raw[0] & 0x04:  # E: canonical wire format
        labels, off = [], 0
        while off < len(name) and name[off]:
            n = name[off]
            labels.append(name[off + 1:off + 1 + n])
            off += 1 + n
        name = b".".join(labels)
    return _name(name)


def options(data: bytes) -> dict[int, bytes]:
    """The options after the magic cookie (the first of each code; pad and end handled)."""
    found: dict[int, bytes] = {}
    off = FIXED
    while off < len(data):
        code = data[off]
        if code == 255:
            break
        if code == 0:
            off += 1
            continue
        if off + 1 >= len(data):
            break
        n = data[off + 1]
        found.setdefault(code, data[off + 2:off + 2 + n])
        off += 2 + n
    return found


def _addr(raw: bytes) -> str | None:
    return str(ipaddress.IPv4Address(raw)) if len(raw) == 4 and raw != b"\0\0\0\0" else None


class DHCP(Parser):
    service = "dhcp"
    transport = "udp"
    ports = frozenset({67, 68})

    # (xid, chaddr) -> the names the client gave, oldest first; shared by every connection
    pending: OrderedDict[tuple[int, bytes], list[str]] = OrderedDict()

    @classmethod
    def detect(cls, data: bytes, is_orig: bool, conn: Conn) -> bool:
        return len(data) >= FIXED and data[0] in (1, 2) and data[2] <= 16 and data[236:240] == MAGIC

    def data(self, is_orig: bool, data: bytes, ts: float) -> None:
        if len(data) < FIXED or data[236:240] != MAGIC:
            return
        data = bytes(data)
        opts = options(data)
        kind = opts.get(53, b"\0")[:1]
        kind = kind[0] if kind else 0
        hlen = min(data[2], 16)
        key = (int.from_bytes(data[4:8], "big"), data[28:28 + hlen])
        mac = ":".join(f"{b:02x}" for b in key[1]) if data[1] == 1 and hlen == 6 else None
        names = [n for n in (_name(opts.get(12, b"")), _fqdn(opts.get(81, b""))) if n]
        if data[0] == 1 and kind != INFORM:  # a client's request: its names wait for the ACK
            if names:
                self.pending[key] = names
                self.pending.move_to_end(key)
                while len(self.pending) > MAX_PENDING:
                    self.pending.popitem(last=False)
            return
        if data[0] == 1:  # INFORM: the client has its address already
            addr = _addr(data[12:16])
        elif kind == ACK:
            addr = _addr(data[16:20]) or _addr(data[12:16])
            names = self.pending.pop(key, []) + names
        else:
            return
        if addr is None:
            return
        if mac is not None:
            self.out.mac(addr, mac, ts=ts, source="dhcp")
        for name in dict.fromkeys(names):
            self.out.name(addr, name, ts=ts, source="dhcp")
