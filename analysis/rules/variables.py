"""Address and port specs of a rule header: lists, ranges, negation and variables.

A spec is resolved to an exact set: sorted, disjoint integer ranges (IPv4 and IPv6 apart for
addresses, 0-65535 for ports), so ``[$HOME_NET,!10.0.0.5]`` and ``![80,443]`` mean what Suricata
means by them. The text as written is kept beside the set, so a rule prints as its author wrote it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Ranges = tuple[tuple[int, int], ...]

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1
PORT_MAX = 65535

# Suricata's suricata.yaml defaults (vars: address-groups and port-groups).
DEFAULT_ADDRESS_VARS: Mapping[str, str] = {
    "HOME_NET": "[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]",
    "EXTERNAL_NET": "!$HOME_NET",
    "HTTP_SERVERS": "$HOME_NET",
    "SMTP_SERVERS": "$HOME_NET",
    "SQL_SERVERS": "$HOME_NET",
    "DNS_SERVERS": "$HOME_NET",
    "TELNET_SERVERS": "$HOME_NET",
    "AIM_SERVERS": "$EXTERNAL_NET",
    "DC_SERVERS": "$HOME_NET",
    "DNP3_SERVER": "$HOME_NET",
    "DNP3_CLIENT": "$HOME_NET",
    "MODBUS_CLIENT": "$HOME_NET",
    "MODBUS_SERVER": "$HOME_NET",
    "ENIP_CLIENT": "$HOME_NET",
    "ENIP_SERVER": "$HOME_NET",
}
DEFAULT_PORT_VARS: Mapping[str, str] = {
    "HTTP_PORTS": "80",
    "SHELLCODE_PORTS": "!80",
    "ORACLE_PORTS": "1521",
    "SSH_PORTS": "22",
    "DNP3_PORTS": "20000",
    "MODBUS_PORTS": "502",
    "FILE_DATA_PORTS": "[$HTTP_PORTS,110,143]",
    "FTP_PORTS": "21",
    "GENEVE_PORTS": "6081",
    "VXLAN_PORTS": "4789",
    "TEREDO_PORTS": "3544",
}


class SpecError(ValueError):
    """An address or port spec that cannot be resolved; the message is the reason a user sees."""


def _merge(ranges: Iterable[tuple[int, int]]) -> Ranges:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _complement(ranges: Ranges, top: int) -> Ranges:
    out, nxt = [], 0
    for lo, hi in ranges:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


def _subtract(ranges: Ranges, minus: Ranges, top: int) -> Ranges:
    keep = _complement(minus, top)
    out, i, j = [], 0, 0
    while i < len(ranges) and j < len(keep):
        lo, hi = max(ranges[i][0], keep[j][0]), min(ranges[i][1], keep[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if ranges[i][1] < keep[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _contains(ranges: Ranges, value: int) -> bool:
    lo, hi = 0, len(ranges)
    while lo < hi:
        mid = (lo + hi) // 2
        if ranges[mid][1] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo < len(ranges) and ranges[lo][0] <= value


@dataclass(frozen=True, slots=True)
class AddressSpec:
    """A resolved address spec: ``text`` as written, ``v4``/``v6`` the exact sets it covers."""

    text: str
    v4: Ranges
    v6: Ranges

    @property
    def is_any(self) -> bool:
        return self.v4 == ((0, V4_MAX),) and self.v6 == ((0, V6_MAX),)

    def contains(self, ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        return _contains(self.v4 if addr.version == 4 else self.v6, int(addr))

    def contains_int(self, addr: int) -> bool:
        """``contains`` for an address as an integer, IPv4 as IPv4-mapped IPv6 (the decoder's form)."""
        if (addr >> 32) == 0xFFFF:
            return _contains(self.v4, addr & 0xFFFFFFFF)
        return _contains(self.v6, addr)

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for ranges, cls in ((self.v4, ipaddress.IPv4Address), (self.v6, ipaddress.IPv6Address)):
            for lo, hi in ranges:
                nets.extend(ipaddress.summarize_address_range(cls(lo), cls(hi)))
        return nets


@dataclass(frozen=True, slots=True)
class PortSpec:
    """A resolved port spec: ``text`` as written, ``ranges`` the exact ports it covers."""

    text: str
    ranges: Ranges

    @property
    def is_any(self) -> bool:
        return self.ranges == ((0, PORT_MAX),)

    def contains(self, port: int) -> bool:
        return _contains(self.ranges, port)


def _split_list(text: str) -> list[str]:
    """Split ``a,[b,c],!d`` at top-level commas."""
    items, depth, cur = [], 0, []
    for ch in text:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise SpecError(f"unbalanced ']' in {text!r}")
        if ch == "," and depth == 0:
            items.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise SpecError(f"unbalanced '[' in {text!r}")
    items.append("".join(cur).strip())
    return items


@dataclass(slots=True)
class Variables:
    """Address and port variables (``$HOME_NET``...) with Suricata's defaults; caches resolutions."""

    addresses: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_ADDRESS_VARS))
    ports: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PORT_VARS))
    _addr_cache: dict[str, AddressSpec] = field(default_factory=dict, repr=False)
    _port_cache: dict[str, PortSpec] = field(default_factory=dict, repr=False)

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, str]) -> Variables:
        """Suricata's defaults, then ``overrides`` (NAME -> VALUE; names ending in _PORT(S) are ports)."""
        out = cls()
        for name, value in overrides.items():
            name = name.lstrip("$")
            if name in DEFAULT_PORT_VARS or name.endswith(("_PORTS", "_PORT")):
                out.ports[name] = value
            else:
                out.addresses[name] = value
        return out

    # addresses -------------------------------------------------------------------------------
    def address(self, text: str) -> AddressSpec:
        text = text.strip()
        cached = self._addr_cache.get(text)
        if cached is None:
            v4, v6 = self._addr_set(text, ())
            if not v4 and not v6:
                raise SpecError(f"address {text!r} matches nothing")
            cached = self._addr_cache[text] = AddressSpec(text, v4, v6)
        return cached

    def _addr_set(self, text: str, seen: tuple[str, ...]) -> tuple[Ranges, Ranges]:
        text = text.strip()
        if not text:
            raise SpecError("empty address")
        if text.startswith("!"):
            v4, v6 = self._addr_set(text[1:], seen)
            return _complement(v4, V4_MAX), _complement(v6, V6_MAX)
        if text.startswith("["):
            if not text.endswith("]"):
                raise SpecError(f"unbalanced '[' in address {text!r}")
            pos4: list[tuple[int, int]] = []
            pos6: list[tuple[int, int]] = []
            neg4: list[tuple[int, int]] = []
            neg6: list[tuple[int, int]] = []
            positive = False
            for item in _split_list(text[1:-1]):
                if item.startswith("!"):
                    v4, v6 = self._addr_set(item[1:], seen)
                    neg4.extend(v4)
                    neg6.extend(v6)
                else:
                    positive = True
                    v4, v6 = self._addr_set(item, seen)
                    pos4.extend(v4)
                    pos6.extend(v6)
            base4 = _merge(pos4) if positive else ((0, V4_MAX),)
            base6 = _merge(pos6) if positive else ((0, V6_MAX),)
            return _subtract(base4, _merge(neg4), V4_MAX), _subtract(base6, _merge(neg6), V6_MAX)
        if text.startswith("$"):
            name = text[1:]
            if name in seen:
                raise SpecError(f"variable ${name} refers to itself")
            if name not in self.addresses:
                hint = " (a port variable)" if name in self.ports else ""
                raise SpecError(f"undefined address variable ${name}{hint}")
            return self._addr_set(self.addresses[name], (*seen, name))
        if text == "any":
            return ((0, V4_MAX),), ((0, V6_MAX),)
        return _one_address(text)

    # ports -----------------------------------------------------------------------------------
    def port(self, text: str) -> PortSpec:
        text = text.strip()
        cached = self._port_cache.get(text)
        if cached is None:
            ranges = self._port_set(text, ())
            if not ranges:
                raise SpecError(f"port {text!r} matches nothing")
            cached = self._port_cache[text] = PortSpec(text, ranges)
        return cached

    def _port_set(self, text: str, seen: tuple[str, ...]) -> Ranges:
        text = text.strip()
        if not text:
            raise SpecError("empty port")
        if text.startswith("!"):
            return _complement(self._port_set(text[1:], seen), PORT_MAX)
        if text.startswith("["):
            if not text.endswith("]"):
                raise SpecError(f"unbalanced '[' in port {text!r}")
            pos: list[tuple[int, int]] = []
            neg: list[tuple[int, int]] = []
            positive = False
            for item in _split_list(text[1:-1]):
                if item.startswith("!"):
                    neg.extend(self._port_set(item[1:], seen))
                else:
                    positive = True
                    pos.extend(self._port_set(item, seen))
            base = _merge(pos) if positive else ((0, PORT_MAX),)
            return _subtract(base, _merge(neg), PORT_MAX)
        if text.startswith("$"):
            name = text[1:]
            if name in seen:
                raise SpecError(f"variable ${name} refers to itself")
            if name not in self.ports:
                hint = " (an address variable)" if name in self.addresses else ""
                raise SpecError(f"undefined port variable ${name}{hint}")
            return self._port_set(self.ports[name], (*seen, name))
        if text == "any":
            return ((0, PORT_MAX),)
        if ":" in text:
            lo_s, _, hi_s = text.partition(":")
            lo = _port_number(lo_s) if lo_s.strip() else 0
            hi = _port_number(hi_s) if hi_s.strip() else PORT_MAX
            if lo > hi:
                raise SpecError(f"port range {text!r} is backwards")
            return ((lo, hi),)
        n = _port_number(text)
        return ((n, n),)


def _port_number(text: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or int(text) > PORT_MAX:
        raise SpecError(f"invalid port {text!r}")
    return int(text)


def _one_address(text: str) -> tuple[Ranges, Ranges]:
    try:
        if "-" in text and "/" not in text:
            lo_s, _, hi_s = text.partition("-")
            lo, hi = ipaddress.ip_address(lo_s.strip()), ipaddress.ip_address(hi_s.strip())
            if lo.version != hi.version or int(lo) > int(hi):
                raise SpecError(f"invalid address range {text!r}")
            rng: Ranges = ((int(lo), int(hi)),)
            return (rng, ()) if lo.version == 4 else ((), rng)
        net = ipaddress.ip_network(text, strict=False)
    except ValueError as err:
        raise SpecError(f"invalid address {text!r}") from err
    rng = ((int(net.network_address), int(net.broadcast_address)),)
    return (rng, ()) if net.version == 4 else ((), rng)
