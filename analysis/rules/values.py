"""The values of a rule's options, each parsed and checked on its own: numbers and number tests,
quoted strings and content bytes, ``flags``, ``flow``, ``flowbits``, ``threshold``,
``byte_test`` / ``byte_jump`` / ``isdataat``, ``ip_proto`` and ``pcre`` (translated by
``analysis.rules.pcre``). Each raises :class:`RuleSyntaxError` saying what is wrong;
``analysis.rules.parser`` applies them to the rule being built."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

from analysis.rules.model import (
    ByteJump,
    ByteTest,
    Flowbit,
    IsDataAt,
    NumberTest,
    Pcre,
    RuleSyntaxError,
    TcpFlags,
    Threshold,
)
from analysis.rules.pcre import pcre_to_python

# pcre flag -> buffer (Suricata's HTTP modifiers)
PCRE_BUFFER_FLAGS: Mapping[str, str] = {
    "U": "http.uri", "I": "http.uri.raw", "P": "http.request_body", "Q": "http.response_body",
    "H": "http.header", "D": "http.header.raw", "M": "http.method", "C": "http.cookie",
    "S": "http.stat_code", "Y": "http.stat_msg", "V": "http.user_agent", "W": "http.host",
    "Z": "http.host.raw",
}
PCRE_FLAGS = frozenset("ismxAERBO") | PCRE_BUFFER_FLAGS.keys()

FLOW_OPTIONS: Mapping[str, str] = {
    "established": "established", "not_established": "not_established", "stateless": "stateless",
    "to_server": "to_server", "from_client": "to_server", "to_client": "to_client",
    "from_server": "to_client", "only_stream": "only_stream", "no_stream": "no_stream",
    "only_frag": "only_frag", "no_frag": "no_frag",
}
FLOW_CONFLICTS = (("to_server", "to_client"), ("established", "not_established"),
                  ("established", "stateless"), ("only_stream", "no_stream"), ("only_frag", "no_frag"))
FLOWBIT_COMMANDS = frozenset({"set", "isset", "isnotset", "unset", "toggle", "noalert"})
IP_PROTOCOLS: Mapping[str, int] = {
    "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "udp": 17, "ipv6": 41, "gre": 47, "esp": 50, "ah": 51,
    "ipv6-icmp": 58, "icmpv6": 58, "ospf": 89, "pim": 103, "vrrp": 112, "l2tp": 115, "sctp": 132,
}

_NUMBER = re.compile(r"^\s*(!|<=|>=|<|>|=)?\s*(\d{1,20})\s*$", re.ASCII)
_RANGE = re.compile(r"^\s*(\d{1,20})\s*(<>|-)\s*(\d{1,20})\s*$", re.ASCII)
_FLAG_LETTERS = "FSRPAUCE0"


# --- small value parsers ---------------------------------------------------------------------

def int_value(value: str, what: str, *, lo: int | None = 0, hi: int | None = None) -> int:
    text = value.strip()
    try:
        if not text.isascii() or len(text) > 40:
            raise ValueError(text)
        n = int(text, 0) if text.lower().startswith(("0x", "-0x")) else int(text, 10)
    except ValueError:
        raise RuleSyntaxError(f"{what} expects a number, got {text!r}") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise RuleSyntaxError(f"{what} {n} is out of range")
    return n


def number_test(value: str, what: str) -> NumberTest:
    m = _NUMBER.match(value)
    if m:
        return NumberTest({"!": "!=", None: "="}.get(m.group(1), m.group(1)), int(m.group(2)))
    m = _RANGE.match(value)
    if m:
        lo, hi = int(m.group(1)), int(m.group(3))
        if lo >= hi:
            raise RuleSyntaxError(f"{what} range {value.strip()!r} is empty")
        return NumberTest(m.group(2), lo, hi)
    raise RuleSyntaxError(f"{what} expects N, <N, >N, <=N, >=N, !N or N<>M, got {value.strip()!r}")


def quoted(value: str, what: str) -> tuple[str, bool]:
    """The text between the quotes of ``"..."`` or ``!"..."``, and whether it was negated."""
    text = value.strip()
    negated = text.startswith("!")
    if negated:
        text = text[1:].lstrip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise RuleSyntaxError(f"{what} must be in double quotes")
    return text[1:-1], negated


def unescape(text: str, what: str, *, strict: bool) -> str:
    if "\\" not in text and '"' not in text:
        return text
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            if i + 1 >= len(text):
                raise RuleSyntaxError(f"{what} ends with a lone backslash")
            nxt = text[i + 1]
            if nxt in '";\\:|' or not strict:
                out.append(nxt if nxt in '";\\:|' else ch + nxt)
                i += 2
                continue
            raise RuleSyntaxError(f"invalid escape \\{nxt} in {what}")
        if ch == '"':
            raise RuleSyntaxError(f"unescaped double quote in {what}")
        out.append(ch)
        i += 1
    return "".join(out)


def content_bytes(inner: str) -> bytes:
    out = bytearray()
    i, n = 0, len(inner)
    while i < n:
        ch = inner[i]
        if ch == "|":
            end = inner.find("|", i + 1)
            if end < 0:
                raise RuleSyntaxError("unterminated |hex| in content")
            digits = "".join(inner[i + 1:end].split())
            if len(digits) % 2 or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise RuleSyntaxError(f"invalid hex {inner[i:end + 1]!r} in content")
            out += bytes.fromhex(digits)
            i = end + 1
        elif ch == "\\":
            if i + 1 >= n:
                raise RuleSyntaxError("content ends with a lone backslash")
            nxt = inner[i + 1]
            if nxt not in '";\\:|':
                raise RuleSyntaxError(f"invalid escape \\{nxt} in content")
            out += nxt.encode()
            i += 2
        elif ch == '"':
            raise RuleSyntaxError("unescaped double quote in content")
        else:
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
    if not out:
        raise RuleSyntaxError("empty content")
    return bytes(out)


def split_commas(value: str) -> list[str]:
    return [p.strip() for p in value.split(",")]


def keyvals(value: str, what: str, keys: frozenset[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in split_commas(value):
        bits = part.split()
        if len(bits) != 2 or bits[0] not in keys:
            raise RuleSyntaxError(f"{what}: bad part {part!r} (expected one of {', '.join(sorted(keys))} with a value)")
        out[bits[0]] = bits[1]
    return out


def threshold_value(value: str, what: str, *, typed: bool) -> Threshold:
    keys = frozenset({"type", "track", "count", "seconds"} if typed else {"track", "count", "seconds"})
    kv = keyvals(value, what, keys)
    missing = sorted(keys - kv.keys())
    if missing:
        raise RuleSyntaxError(f"{what} needs {', '.join(missing)}")
    if typed and kv["type"] not in ("limit", "threshold", "both"):
        raise RuleSyntaxError(f"{what} type must be limit, threshold or both, not {kv['type']!r}")
    if kv["track"] not in ("by_src", "by_dst", "by_rule", "by_both", "by_flow"):
        raise RuleSyntaxError(f"{what} track must be by_src, by_dst, by_rule, by_both or by_flow, "
                              f"not {kv['track']!r}")
    return Threshold(kv.get("type"), kv["track"], int_value(kv["count"], f"{what} count", lo=1),
                     int_value(kv["seconds"], f"{what} seconds", lo=0))


def flags_value(value: str) -> TcpFlags:
    main, _, mask = value.strip().partition(",")
    main = main.strip().replace("1", "C").replace("2", "E")
    modifier = ""
    for mod in "!*+":
        if main.startswith(mod) or main.endswith(mod):
            modifier = mod
            main = main.strip(mod)
    mask = mask.strip().replace("1", "C").replace("2", "E")
    if not main or any(c not in _FLAG_LETTERS for c in main) or any(c not in _FLAG_LETTERS[:-1] for c in mask):
        raise RuleSyntaxError(f"flags: invalid value {value.strip()!r}")
    return TcpFlags(main, modifier, mask)


def ip_proto(value: str) -> NumberTest:
    text = value.strip()
    op = "="
    for prefix, name in (("!", "!="), ("<", "<"), (">", ">")):
        if text.startswith(prefix):
            op, text = name, text[1:].strip()
    num = IP_PROTOCOLS.get(text.lower())
    if num is None:
        num = int_value(text, "ip_proto", lo=0, hi=255)
    return NumberTest(op, num)


_ENDIAN = {"big": "big", "little": "little", "dce": "dce"}
_BASES = ("hex", "dec", "oct")


def byte_test(value: str, buffer: str, transforms: tuple[str, ...], names: frozenset[str] = frozenset()) -> ByteTest:
    """``names``: the byte_extract variables defined before it (usable as value or offset)."""
    parts = split_commas(value)
    if len(parts) < 4:
        raise RuleSyntaxError("byte_test needs bytes, operator, value, offset")
    op = parts[1].replace(" ", "")
    negated = op.startswith("!")
    op = op.lstrip("!") or "="
    if op not in ("<", ">", "=", "<=", ">=", "&", "^"):
        raise RuleSyntaxError(f"byte_test: invalid operator {parts[1]!r}")
    kw: dict = {"relative": False, "endian": "big", "string": None, "bitmask": None}
    for opt in parts[4:]:
        if opt == "relative":
            kw["relative"] = True
        elif opt in _ENDIAN:
            kw["endian"] = _ENDIAN[opt]
        elif opt == "string":
            kw["string"] = kw["string"] or "dec"
        elif opt in _BASES:
            kw["string"] = opt
        elif opt.startswith("bitmask"):
            kw["bitmask"] = int_value(opt[len("bitmask"):], "byte_test bitmask")
        else:
            raise RuleSyntaxError(f"byte_test: unknown option {opt!r}")
    # 0 bytes with `string` is accepted, as Suricata does (ET uses it)
    nbytes = int_value(parts[0], "byte_test bytes", lo=0 if kw["string"] else 1, hi=23 if kw["string"] else 8)
    value = parts[2] if parts[2] in names else int_value(parts[2], "byte_test value", lo=None)
    offset = parts[3] if parts[3] in names else int_value(parts[3], "byte_test offset", lo=None)
    return ByteTest(nbytes, op, value, offset, buffer, transforms, negated, **kw)


def byte_jump(value: str, buffer: str, transforms: tuple[str, ...]) -> ByteJump:
    parts = split_commas(value)
    if len(parts) < 2:
        raise RuleSyntaxError("byte_jump needs bytes, offset")
    kw: dict = {"relative": False, "multiplier": 1, "endian": "big", "string": None, "align": False,
                "from_beginning": False, "from_end": False, "post_offset": 0, "bitmask": None}
    for opt in parts[2:]:
        word, _, arg = opt.partition(" ")
        if opt in ("relative", "align", "from_beginning", "from_end"):
            kw[opt] = True
        elif opt in _ENDIAN:
            kw["endian"] = _ENDIAN[opt]
        elif opt == "string":
            kw["string"] = kw["string"] or "dec"
        elif opt in _BASES:
            kw["string"] = opt
        elif word == "multiplier":
            kw["multiplier"] = int_value(arg, "byte_jump multiplier", lo=1)
        elif word == "post_offset":
            kw["post_offset"] = int_value(arg, "byte_jump post_offset", lo=None)
        elif word == "bitmask":
            kw["bitmask"] = int_value(arg, "byte_jump bitmask")
        else:
            raise RuleSyntaxError(f"byte_jump: unknown option {opt!r}")
    nbytes = int_value(parts[0], "byte_jump bytes", lo=1, hi=23 if kw["string"] else 8)
    return ByteJump(nbytes, int_value(parts[1], "byte_jump offset", lo=None), buffer, transforms, **kw)


def isdataat(value: str, buffer: str, transforms: tuple[str, ...]) -> IsDataAt:
    parts = split_commas(value)
    first = parts[0]
    negated = first.startswith("!")
    flags = set(parts[1:])
    if flags - {"relative", "rawbytes"}:
        raise RuleSyntaxError(f"isdataat: unknown option {', '.join(sorted(flags - {'relative', 'rawbytes'}))}")
    return IsDataAt(int_value(first.lstrip("!"), "isdataat"), buffer, transforms, negated,
                    "relative" in flags, "rawbytes" in flags)


def flowbit_value(value: str) -> Flowbit:
    cmd, _, names = value.partition(",")
    cmd, names = cmd.strip(), names.strip()
    if cmd not in FLOWBIT_COMMANDS:
        raise RuleSyntaxError(f"flowbits: unknown command {cmd!r}")
    if cmd == "noalert":
        if names:
            raise RuleSyntaxError("flowbits:noalert takes no name")
        return Flowbit(cmd)
    if not names:
        raise RuleSyntaxError(f"flowbits:{cmd} needs a name")
    any_of = "|" in names
    if any_of and cmd not in ("isset", "isnotset"):
        raise RuleSyntaxError(f"flowbits:{cmd} cannot take '|' (only isset and isnotset can)")
    split = [n.strip() for n in re.split(r"[|&]", names)]
    if any(not n or any(c.isspace() for c in n) for n in split):
        raise RuleSyntaxError(f"flowbits: invalid name {names!r}")
    return Flowbit(cmd, tuple(split), any_of)


def flow_value(value: str) -> frozenset[str]:
    out = set()
    for part in split_commas(value):
        if part not in FLOW_OPTIONS:
            raise RuleSyntaxError(f"flow: unknown option {part!r}")
        out.add(FLOW_OPTIONS[part])
    for a, b in FLOW_CONFLICTS:
        if a in out and b in out:
            raise RuleSyntaxError(f"flow: {a} and {b} conflict")
    return frozenset(out)


def pcre_value(value: str, buffer: str, sticky: bool, transforms: tuple[str, ...]) -> Pcre:
    bare = value.strip()
    if bare.lstrip("!").startswith("/"):  # Suricata also takes the pattern unquoted: pcre:/x/U;
        inner, negated = bare.lstrip("!"), bare.startswith("!")
    else:
        inner, negated = quoted(value, "pcre")
    if not inner.startswith("/") or inner.rfind("/") == 0:
        raise RuleSyntaxError("pcre must be /pattern/flags")
    last = inner.rfind("/")
    source, flags = inner[1:last], inner[last + 1:]
    bad = sorted(set(flags) - PCRE_FLAGS)
    if bad:
        reason = "ungreedy (G) is not supported by Python re" if bad == ["G"] else f"unknown flag {bad[0]!r}"
        raise RuleSyntaxError(f"pcre: {reason}")
    buffer_flags = [f for f in flags if f in PCRE_BUFFER_FLAGS]
    if len(set(buffer_flags)) > 1:
        raise RuleSyntaxError(f"pcre: buffer flags {''.join(buffer_flags)} conflict")
    if buffer_flags:
        wanted = PCRE_BUFFER_FLAGS[buffer_flags[0]]
        if sticky and wanted != buffer and {wanted, buffer} != {"http.response_body", "file.data"}:
            raise RuleSyntaxError(f"pcre: flag {buffer_flags[0]} ({wanted}) conflicts with the sticky buffer {buffer}")
        buffer = PCRE_BUFFER_FLAGS[buffer_flags[0]]
    re_flags = 0
    for letter, flag in (("i", re.I), ("s", re.S), ("m", re.M), ("x", re.X)):
        if letter in flags:
            re_flags |= flag
    try:
        pattern = pcre_to_python(source)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            regex = re.compile(pattern.encode("utf-8", "surrogateescape"), re_flags)
    except RuleSyntaxError:
        raise
    except (re.error, OverflowError, RecursionError, ValueError) as err:
        raise RuleSyntaxError(f"pcre: Python re cannot compile it: {err}") from None
    return Pcre(source, flags, regex, buffer, transforms, negated, "R" in flags, "A" in flags, "E" in flags)
