"""Keywords that test state beyond one packet's bytes, as Suricata defines them:

- ``xbits:<set|unset|isset|isnotset|toggle>,<name>,track <ip_src|ip_dst|ip_pair>[,expire <s>]``:
  bits kept per host (the packet's source or destination address) or per address pair (both
  orders alike, as Suricata's IPPair table), across flows, until they expire (Suricata's default
  30 seconds; ``isset`` is true while the bit is set and not expired, by packet time).
- ``stream_size:<server|client|both|either>,<op>,<N>``: Suricata's ``next_seq - isn`` of the TCP
  side(s): the bytes that side sent so far, plus one for its SYN (the packet being inspected
  included). No TCP session, no match.
- ``tls.version:<1.0|1.1|1.2|1.3|0xNNNN>``: the version in the hello of the inspected packet's
  direction (the client's ClientHello version for packets to the server, the ServerHello's for
  packets to the client), as Suricata's ``client_connp``/``server_connp`` version.
- ``flowint:<name>,<op>[,<value>]``: an integer per flow: ``=``, ``+``, ``-`` set or change it
  (``+``/``-`` on an unset variable set it to the value, as Suricata), ``==``, ``!=``, ``<``,
  ``<=``, ``>``, ``>=`` test it (an unset variable fails), ``isset``/``notset`` test its presence;
  the value is a number or another flowint's name.
- ``dce_iface``, ``dce_opnum`` (the DCE-RPC parser's ``dce.iface`` and ``dce.opnum`` buffers, per
  request) and the sticky buffer ``dce_stub_data`` (a request's or response's stub).
- ``tag:<session|host>[,<count>,<packets|seconds|bytes>][,<src|dst>]``: Suricata writes the tagged
  packets to its packet log; alerts do not change. Accepted and checked; Wiretrail keeps every
  packet of the capture already (``wiretrail extract --alert`` gives the session's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analysis.rules.model import Base64Decode, ByteExtract, DceIface, DceOpnum, NumberTest, RuleSyntaxError

NS = 1_000_000_000
XBITS_EXPIRE_DEFAULT = 30  # seconds, Suricata's DETECT_XBITS_EXPIRE_DEFAULT
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
_TLS_VERSIONS = {"1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303, "1.3": 0x0304, "ssl3": 0x0300, "3.0": 0x0300}
_SIZE = re.compile(r"^\s*(server|client|both|either)\s*,\s*(<=|>=|!=|<|>|=)\s*,\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class Xbit:
    command: str  # set unset isset isnotset toggle
    name: str
    track: str  # ip_src ip_dst ip_pair
    expire: int = XBITS_EXPIRE_DEFAULT  # seconds


@dataclass(frozen=True, slots=True)
class StreamSize:
    side: str  # server client both either
    test: NumberTest


@dataclass(frozen=True, slots=True)
class Flowint:
    name: str
    op: str  # = + - == != < <= > >= isset notset
    value: int | str | None = None  # a number, another variable's name, or None (isset/notset)

    @property
    def modifies(self) -> bool:
        return self.op in ("=", "+", "-")


_INT_OPS = ("=", "+", "-", "==", "!=", "<", "<=", ">", ">=")


def flowint_value(value: str) -> Flowint:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 2 or not _NAME.match(parts[0]):
        raise RuleSyntaxError("flowint expects <name>,<op>[,<value>]")
    name, op = parts[0], parts[1]
    if op in ("isset", "notset", "isnotset"):
        if len(parts) != 2:
            raise RuleSyntaxError(f"flowint:{op} takes no value")
        return Flowint(name, "notset" if op == "isnotset" else op)
    if op not in _INT_OPS or len(parts) != 3 or not parts[2]:
        raise RuleSyntaxError(f"flowint: operator must be one of {' '.join(_INT_OPS)} isset notset, with a value")
    arg = parts[2]
    if arg.isdigit():
        return Flowint(name, op, int(arg))
    if not _NAME.match(arg):
        raise RuleSyntaxError(f"flowint: bad value {arg!r}")
    return Flowint(name, op, arg)


def flowints_ok(ints: tuple[Flowint, ...], have: dict[str, int]) -> bool:
    for v in ints:
        if v.op == "isset":
            if v.name not in have:
                return False
        elif v.op == "notset":
            if v.name in have:
                return False
        elif not v.modifies:
            x = have.get(v.name)
            y = have.get(v.value) if isinstance(v.value, str) else v.value
            if x is None or y is None or not NumberTest({"==": "="}.get(v.op, v.op), y).test(x):
                return False
    return True


def flowints_apply(ints: tuple[Flowint, ...], have: dict[str, int]) -> None:
    for v in ints:
        if not v.modifies:
            continue
        y = have.get(v.value) if isinstance(v.value, str) else v.value
        if y is None:
            continue
        x = have.get(v.name)
        if v.op == "=" or x is None:
            have[v.name] = y
        else:
            have[v.name] = x + y if v.op == "+" else x - y


def xbit_value(value: str) -> Xbit:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 3:
        raise RuleSyntaxError("xbits expects <command>,<name>,track <ip_src|ip_dst|ip_pair>[,expire <seconds>]")
    cmd, name = parts[0], parts[1]
    if cmd not in ("set", "unset", "isset", "isnotset", "toggle"):
        raise RuleSyntaxError(f"xbits: unknown command {cmd!r}")
    if not _NAME.match(name):
        raise RuleSyntaxError(f"xbits: invalid name {name!r}")
    track = expire = None
    for opt in parts[2:]:
        key, _, arg = opt.partition(" ")
        arg = arg.strip()
        if key == "track" and arg in ("ip_src", "ip_dst", "ip_pair"):
            track = arg
        elif key == "expire" and arg.isdigit() and int(arg) > 0:
            expire = int(arg)
        else:
            raise RuleSyntaxError(f"xbits: unknown option {opt!r} (track ip_src|ip_dst|ip_pair, expire N)")
    if track is None:
        raise RuleSyntaxError("xbits needs track ip_src, ip_dst or ip_pair")
    return Xbit(cmd, name, track, expire or XBITS_EXPIRE_DEFAULT)


def stream_size_value(value: str) -> StreamSize:
    m = _SIZE.match(value)
    if m is None:
        raise RuleSyntaxError("stream_size expects <server|client|both|either>,<op>,<number> "
                              f"(op one of < > = != <= >=), got {value.strip()!r}")
    return StreamSize(m.group(1), NumberTest(m.group(2), int(m.group(3))))


def tls_version_value(value: str) -> int:
    v = value.strip()
    if v in _TLS_VERSIONS:
        return _TLS_VERSIONS[v]
    if re.fullmatch(r"0[xX][0-9a-fA-F]{1,4}", v):
        return int(v, 16)
    raise RuleSyntaxError(f"tls.version expects 1.0, 1.1, 1.2, 1.3 or a 0x hex value, got {v!r}")


def check_tag(value: str) -> None:
    parts = [p.strip() for p in value.split(",")]
    if parts[0] not in ("session", "host"):
        raise RuleSyntaxError(f"tag: type must be session or host, not {parts[0]!r}")
    rest = parts[1:]
    if rest and rest[-1] in ("src", "dst"):
        if parts[0] != "host":
            raise RuleSyntaxError("tag: src/dst applies to host tags only")
        rest = rest[:-1]
    if rest and (len(rest) != 2 or not rest[0].isdigit() or rest[1] not in ("packets", "seconds", "bytes")):
        raise RuleSyntaxError("tag expects <session|host>[,<count>,<packets|seconds|bytes>][,<src|dst>]")


def base64_decode_value(value: str, buffer: str, transforms: tuple[str, ...]) -> Base64Decode:
    """``base64_decode:[bytes N][, offset N][, relative]`` (Suricata: bytes > 0, at most 65535)."""
    nbytes, offset, relative = 0, 0, False
    for opt in (p.strip() for p in value.split(",")):
        if not opt:
            continue
        key, _, arg = opt.partition(" ")
        arg = arg.strip()
        if key == "relative" and not arg:
            relative = True
        elif key == "bytes" and arg.isdigit() and 0 < int(arg) <= 65535:
            nbytes = int(arg)
        elif key == "offset" and arg.isdigit() and int(arg) <= 65535:
            offset = int(arg)
        else:
            raise RuleSyntaxError(f"base64_decode: bad option {opt!r} (bytes N, offset N, relative)")
    return Base64Decode(nbytes, offset, relative, buffer, transforms)


_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def dce_iface_value(value: str) -> DceIface:
    parts = [p.strip() for p in value.split(",")]
    if not _UUID.match(parts[0]):
        raise RuleSyntaxError(f"dce_iface: {parts[0]!r} is not a UUID")
    op = version = None
    any_frag = False
    for part in parts[1:]:
        if part == "any_frag":
            any_frag = True
        elif re.fullmatch(r"[<>=!]\d{1,5}", part) and int(part[1:]) <= 65535:
            op, version = part[0], int(part[1:])
        else:
            raise RuleSyntaxError(f"dce_iface: bad option {part!r} (<op><version> or any_frag)")
    return DceIface(parts[0].lower(), op, version, any_frag)


def dce_opnum_value(value: str) -> DceOpnum:
    ranges = []
    for part in (p.strip() for p in value.split(",")):
        m = re.fullmatch(r"(\d{1,5})(?:-(\d{1,5}))?", part)
        if m is None or int(m.group(2) or m.group(1)) < int(m.group(1)) or int(m.group(2) or 0) > 65535:
            raise RuleSyntaxError(f"dce_opnum: bad value {part!r} (numbers and ranges a-b, comma separated)")
        ranges.append((int(m.group(1)), int(m.group(2) or m.group(1))))
    return DceOpnum(tuple(ranges))


def dce_iface_ok(d: DceIface, buf: bytes) -> bool:
    """``buf``: b"<uuid> <major version> <first fragment 0|1>", as the DCE-RPC parser gives it."""
    try:
        uuid, major, first = buf.decode("ascii").split()
    except (UnicodeDecodeError, ValueError):
        return False
    if uuid != d.uuid or (first != "1" and not d.any_frag) or not major.isdigit():
        return False
    if d.op is None:
        return True
    v = int(major)
    return {"<": v < d.version, ">": v > d.version, "=": v == d.version, "!": v != d.version}[d.op]  # type: ignore[operator]


def dce_opnum_ok(d: DceOpnum, buf: bytes) -> bool:
    if not buf.isdigit():
        return False
    n = int(buf)
    return any(lo <= n <= hi for lo, hi in d.ranges)


_ENDIANS = {"big": "big", "little": "little", "dce": "little"}  # dce: NDR's usual little-endian (see match.py)


def byte_extract_value(value: str, buffer: str, transforms: tuple[str, ...]) -> ByteExtract:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) < 3 or not parts[0].isdigit() or not re.fullmatch(r"-?\d+", parts[1]) \
            or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", parts[2]):
        raise RuleSyntaxError("byte_extract needs <bytes>,<offset>,<name>[,options]")
    kw: dict = {}
    for opt in parts[3:]:
        word, _, arg = opt.partition(" ")
        arg = arg.strip()
        if opt == "relative":
            kw["relative"] = True
        elif opt in _ENDIANS:
            kw["endian"] = _ENDIANS[opt]
        elif opt == "string":
            kw["string"] = kw.get("string") or "dec"
        elif opt in ("hex", "dec", "oct"):
            kw["string"] = opt
        elif word in ("multiplier", "align") and arg.isdigit() and int(arg) > 0:
            if word == "align" and int(arg) not in (2, 4):
                raise RuleSyntaxError("byte_extract: align must be 2 or 4")
            kw[word] = int(arg)
        else:
            raise RuleSyntaxError(f"byte_extract: unknown option {opt!r}")
    nbytes = int(parts[0])
    if not 1 <= nbytes <= (23 if kw.get("string") else 8):
        raise RuleSyntaxError(f"byte_extract: {nbytes} bytes is out of range")
    return ByteExtract(nbytes, int(parts[1]), parts[2], buffer=buffer, transforms=transforms, **kw)


def hello_version(payload: bytes) -> int | None:
    """The version of a ClientHello or ServerHello at the start of a TLS record, or None."""
    if len(payload) >= 11 and payload[0] == 22 and payload[1] == 3 and payload[5] in (1, 2):
        return (payload[9] << 8) | payload[10]
    return None


class XbitStore:
    """The xbits of every host and address pair, with their expiry (packet time, ns)."""

    __slots__ = ("bits",)

    def __init__(self) -> None:
        self.bits: dict[tuple, int] = {}

    @staticmethod
    def _key(b: Xbit, src: int, dst: int) -> tuple:
        if b.track == "ip_src":
            return (b.name, 0, src)
        if b.track == "ip_dst":
            return (b.name, 0, dst)
        return (b.name, 1, min(src, dst), max(src, dst))

    def ok(self, xbits: tuple[Xbit, ...], src: int, dst: int, ts: int) -> bool:
        for b in xbits:
            if b.command in ("isset", "isnotset"):
                exp = self.bits.get(self._key(b, src, dst))
                have = exp is not None and exp > ts
                if have != (b.command == "isset"):
                    return False
        return True

    def apply(self, xbits: tuple[Xbit, ...], src: int, dst: int, ts: int) -> None:
        for b in xbits:
            key = self._key(b, src, dst)
            if b.command == "set":
                self.bits[key] = ts + b.expire * NS
            elif b.command == "unset":
                self.bits.pop(key, None)
            elif b.command == "toggle":
                exp = self.bits.pop(key, None)
                if exp is None or exp <= ts:
                    self.bits[key] = ts + b.expire * NS

    def sweep(self, now: int) -> None:
        for k in [k for k, exp in self.bits.items() if exp <= now]:
            del self.bits[k]


def stream_size_ok(s: StreamSize, sizes: tuple[int | None, int | None]) -> bool:
    """``sizes``: (client, server) ``next_seq - isn``, None for a side not seen."""
    client, server = sizes
    if s.side == "server":
        return server is not None and s.test.test(server)
    if s.side == "client":
        return client is not None and s.test.test(client)
    if s.side == "both":
        return client is not None and server is not None and s.test.test(client) and s.test.test(server)
    return (client is not None and s.test.test(client)) or (server is not None and s.test.test(server))


__all__ = ["byte_extract_value", "dce_iface_ok", "dce_iface_value", "dce_opnum_ok", "dce_opnum_value", "Flowint", "StreamSize", "flowint_value", "flowints_apply", "flowints_ok", "Xbit", "XbitStore", "base64_decode_value", "check_tag", "hello_version", "stream_size_ok",
           "stream_size_value", "tls_version_value", "xbit_value"]
