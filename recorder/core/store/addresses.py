"""The 16-byte address form the store keeps beside each address's text (``orig_a`` beside
``orig_h``), so an IP or CIDR filter is a ``BETWEEN`` an index serves, on SQLite and PostgreSQL.

Pure: no database library, so the listings' queries (``listing``) can be built without one.
"""

from __future__ import annotations

import ipaddress
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def addr16(ip: str | IPAddress) -> bytes:
    """The 16-byte form stored in ``orig_a``/``resp_a``: IPv6 as is, IPv4 as ``::ffff:a.b.c.d``."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def host_range(text: str) -> tuple[bytes, bytes]:
    """First and last 16-byte address of an IP or CIDR (``10.0.0.0/8``, ``2001:db8::/32``).

    Host bits in a CIDR are ignored (``10.1.2.3/8`` is ``10.0.0.0/8``). Raises ``ValueError``.
    """
    net = ipaddress.ip_network(text.strip(), strict=False)
    return addr16(net.network_address), addr16(net.broadcast_address)


def addr16_or_none(ip: Any) -> bytes | None:
    """``addr16``, or None for what is not an address."""
    try:
        return addr16(ip)
    except (ValueError, TypeError):
        return None


