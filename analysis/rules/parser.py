"""Parse one Suricata-syntax rule into a :class:`~analysis.rules.model.Rule` (files are read by
``analysis.rules.loader``, PCRE translated by ``analysis.rules.pcre``).

A bad rule raises :class:`RuleSyntaxError` with the reason, which the loader records as a
:class:`RuleError` with ``path:line`` before reading the next one. A keyword the engine does not
implement rejects its rule with ``unsupported keyword X``: the supported ones are the keys of
:data:`KEYWORDS`.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping

from analysis.rules.classification import Classtype
from analysis.rules.model import (
    PAYLOAD,
    Action,
    BufferSize,
    ByteJump,
    ByteTest,
    Content,
    Direction,
    Flowbit,
    IsDataAt,
    Match,
    NumberTest,
    Pcre,
    Reference,
    Rule,
    RuleSyntaxError,
    TcpFlags,
    Threshold,
)
from analysis.rules.pcre import pcre_to_python
from analysis.rules.variables import SpecError, Variables

# --- what is supported -----------------------------------------------------------------------

TRANSPORTS = frozenset({"ip", "ipv4", "ipv6", "tcp", "udp", "icmp", "icmpv4", "icmpv6", "tcp-pkt", "tcp-stream", "sctp"})
APP_PROTOCOLS = frozenset({
    "http", "http1", "http2", "dns", "tls", "ssh", "ftp", "ftp-data", "smtp", "imap", "pop3", "smb",
    "dcerpc", "dhcp", "nfs", "ntp", "tftp", "krb5", "snmp", "sip", "rdp", "rfb", "mqtt", "modbus",
    "dnp3", "enip", "ikev2", "ike", "quic", "bittorrent-dht", "telnet", "pgsql",
})

# sticky buffer keyword (and legacy alias) -> buffer name
STICKY_BUFFERS: Mapping[str, str] = {
    **{name: name for name in (
        "http.uri", "http.uri.raw", "http.method", "http.request_line", "http.request_body",
        "http.header", "http.header.raw", "http.header_names", "http.cookie", "http.user_agent",
        "http.host", "http.host.raw", "http.accept", "http.accept_enc", "http.accept_lang",
        "http.connection", "http.content_type", "http.content_len", "http.referer", "http.location",
        "http.server", "http.start", "http.protocol", "http.stat_code", "http.stat_msg",
        "http.response_line", "http.response_body", "file.data", "dns.query", "tls.sni",
        "tls.cert_subject", "tls.cert_issuer", "tls.cert_serial", "tls.cert_fingerprint", "tls.certs",
        "ja3.hash", "ja3.string", "ja3s.hash", "ja3s.string", "ssh.proto", "ssh.software")},
    "http.raw_uri": "http.uri.raw", "file_data": "file.data", "dns_query": "dns.query",
    "tls_sni": "tls.sni", "tls_cert_subject": "tls.cert_subject", "tls_cert_issuer": "tls.cert_issuer",
    "tls_cert_serial": "tls.cert_serial", "tls_cert_fingerprint": "tls.cert_fingerprint",
    "ja3_hash": "ja3.hash", "ja3_string": "ja3.string", "ja3s_hash": "ja3s.hash",
    "ja3s_string": "ja3s.string", "dns.queries.rrname": "dns.query", "ssh_proto": "ssh.proto", "ssh_software": "ssh.software",
    "http_request_line": "http.request_line", "http_response_line": "http.response_line",
    "http_content_type": "http.content_type", "http_content_len": "http.content_len",
    "http_accept": "http.accept", "http_accept_enc": "http.accept_enc",
    "http_accept_lang": "http.accept_lang", "http_connection": "http.connection",
    "http_referer": "http.referer", "http_location": "http.location", "http_server": "http.server",
    "http_start": "http.start", "http_protocol": "http.protocol", "http_header_names": "http.header_names",
    "http.response_body": "http.response_body", "http.request_body": "http.request_body",
}
# legacy content modifiers: move the previous content into a buffer
LEGACY_MODIFIERS: Mapping[str, str] = {
    "http_uri": "http.uri", "http_raw_uri": "http.uri.raw", "http_method": "http.method",
    "http_header": "http.header", "http_raw_header": "http.header.raw", "http_cookie": "http.cookie",
    "http_client_body": "http.request_body", "http_server_body": "http.response_body",
    "http_stat_code": "http.stat_code", "http_stat_msg": "http.stat_msg",
    "http_user_agent": "http.user_agent", "http_host": "http.host", "http_raw_host": "http.host.raw",
}
TRANSFORMS = frozenset({
    "dotprefix", "to_lowercase", "to_uppercase", "strip_whitespace", "compress_whitespace",
    "url_decode", "to_md5", "to_sha1", "to_sha256",
})
CONTENT_MODIFIERS = frozenset({
    "nocase", "depth", "offset", "distance", "within", "startswith", "endswith", "fast_pattern", "rawbytes",
})
OTHER_KEYWORDS = frozenset({
    "msg", "sid", "rev", "gid", "classtype", "priority", "metadata", "reference", "target",
    "content", "uricontent", "pcre", "flow", "flowbits", "dsize", "flags", "ip_proto", "itype", "icode", "isdataat",
    "bsize", "urilen", "byte_test", "byte_jump", "threshold", "detection_filter", "noalert", "pkt_data",
})
KEYWORDS: frozenset[str] = (OTHER_KEYWORDS | CONTENT_MODIFIERS | TRANSFORMS | STICKY_BUFFERS.keys()
                            | LEGACY_MODIFIERS.keys())
SINGLE = frozenset({"msg", "sid", "rev", "gid", "classtype", "priority", "flow", "dsize", "urilen",
                    "flags", "ip_proto", "itype", "icode", "threshold", "detection_filter", "target"})

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

def _int(value: str, what: str, *, lo: int | None = 0, hi: int | None = None) -> int:
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


def _number_test(value: str, what: str) -> NumberTest:
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


def _quoted(value: str, what: str) -> tuple[str, bool]:
    """The text between the quotes of ``"..."`` or ``!"..."``, and whether it was negated."""
    text = value.strip()
    negated = text.startswith("!")
    if negated:
        text = text[1:].lstrip()
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise RuleSyntaxError(f"{what} must be in double quotes")
    return text[1:-1], negated


def _unescape(text: str, what: str, *, strict: bool) -> str:
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


def _content_bytes(inner: str) -> bytes:
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


def _parts(value: str) -> list[str]:
    return [p.strip() for p in value.split(",")]


def _keyvals(value: str, what: str, keys: frozenset[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in _parts(value):
        bits = part.split()
        if len(bits) != 2 or bits[0] not in keys:
            raise RuleSyntaxError(f"{what}: bad part {part!r} (expected one of {', '.join(sorted(keys))} with a value)")
        out[bits[0]] = bits[1]
    return out


def _threshold(value: str, what: str, *, typed: bool) -> Threshold:
    keys = frozenset({"type", "track", "count", "seconds"} if typed else {"track", "count", "seconds"})
    kv = _keyvals(value, what, keys)
    missing = sorted(keys - kv.keys())
    if missing:
        raise RuleSyntaxError(f"{what} needs {', '.join(missing)}")
    if typed and kv["type"] not in ("limit", "threshold", "both"):
        raise RuleSyntaxError(f"{what} type must be limit, threshold or both, not {kv['type']!r}")
    if kv["track"] not in ("by_src", "by_dst", "by_rule", "by_both", "by_flow"):
        raise RuleSyntaxError(f"{what} track must be by_src, by_dst, by_rule, by_both or by_flow, "
                              f"not {kv['track']!r}")
    return Threshold(kv.get("type"), kv["track"], _int(kv["count"], f"{what} count", lo=1),
                     _int(kv["seconds"], f"{what} seconds", lo=0))


def _flags(value: str) -> TcpFlags:
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


def _ip_proto(value: str) -> NumberTest:
    text = value.strip()
    op = "="
    for prefix, name in (("!", "!="), ("<", "<"), (">", ">")):
        if text.startswith(prefix):
            op, text = name, text[1:].strip()
    num = IP_PROTOCOLS.get(text.lower())
    if num is None:
        num = _int(text, "ip_proto", lo=0, hi=255)
    return NumberTest(op, num)


_ENDIAN = {"big": "big", "little": "little", "dce": "dce"}
_BASES = ("hex", "dec", "oct")


def _byte_test(value: str, buffer: str, transforms: tuple[str, ...]) -> ByteTest:
    parts = _parts(value)
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
            kw["bitmask"] = _int(opt[len("bitmask"):], "byte_test bitmask")
        else:
            raise RuleSyntaxError(f"byte_test: unknown option {opt!r}")
    # 0 bytes with `string` is accepted, as Suricata does (ET uses it)
    nbytes = _int(parts[0], "byte_test bytes", lo=0 if kw["string"] else 1, hi=23 if kw["string"] else 8)
    return ByteTest(nbytes, op, _int(parts[2], "byte_test value", lo=None), _int(parts[3], "byte_test offset", lo=None),
                    buffer, transforms, negated, **kw)


def _byte_jump(value: str, buffer: str, transforms: tuple[str, ...]) -> ByteJump:
    parts = _parts(value)
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
            kw["multiplier"] = _int(arg, "byte_jump multiplier", lo=1)
        elif word == "post_offset":
            kw["post_offset"] = _int(arg, "byte_jump post_offset", lo=None)
        elif word == "bitmask":
            kw["bitmask"] = _int(arg, "byte_jump bitmask")
        else:
            raise RuleSyntaxError(f"byte_jump: unknown option {opt!r}")
    nbytes = _int(parts[0], "byte_jump bytes", lo=1, hi=23 if kw["string"] else 8)
    return ByteJump(nbytes, _int(parts[1], "byte_jump offset", lo=None), buffer, transforms, **kw)


def _isdataat(value: str, buffer: str, transforms: tuple[str, ...]) -> IsDataAt:
    parts = _parts(value)
    first = parts[0]
    negated = first.startswith("!")
    flags = set(parts[1:])
    if flags - {"relative", "rawbytes"}:
        raise RuleSyntaxError(f"isdataat: unknown option {', '.join(sorted(flags - {'relative', 'rawbytes'}))}")
    return IsDataAt(_int(first.lstrip("!"), "isdataat"), buffer, transforms, negated,
                    "relative" in flags, "rawbytes" in flags)


def _flowbit(value: str) -> Flowbit:
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


def _flow(value: str) -> frozenset[str]:
    out = set()
    for part in _parts(value):
        if part not in FLOW_OPTIONS:
            raise RuleSyntaxError(f"flow: unknown option {part!r}")
        out.add(FLOW_OPTIONS[part])
    for a, b in FLOW_CONFLICTS:
        if a in out and b in out:
            raise RuleSyntaxError(f"flow: {a} and {b} conflict")
    return frozenset(out)


def _pcre(value: str, buffer: str, sticky: bool, transforms: tuple[str, ...]) -> Pcre:
    bare = value.strip()
    if bare.lstrip("!").startswith("/"):  # Suricata also takes the pattern unquoted: pcre:/x/U;
        inner, negated = bare.lstrip("!"), bare.startswith("!")
    else:
        inner, negated = _quoted(value, "pcre")
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


# --- rule text -> options ----------------------------------------------------------------------

_OPTION = re.compile(r"((?:\\.|[^\\;])*);", re.S)  # up to the first ';' not escaped by a backslash
_NOT_IN_KEYWORD = re.compile(r'[\s"\\]')


def split_options(body: str) -> list[tuple[str, str]]:
    """``msg:"a\\;b"; sid:1;`` -> [("msg", '"a\\;b"'), ("sid", "1")].

    As in Suricata, an option ends at the first ``;`` not escaped with a backslash, inside quotes
    or not: a ``;`` in a value must be written ``\\;`` (or ``|3B|`` in a content).
    """
    options: list[tuple[str, str]] = []
    pos = 0
    match = _OPTION.match
    while (m := match(body, pos)) is not None:
        options.append(_option(m.group(1)))
        pos = m.end()
    rest = body[pos:].strip()
    if rest:
        raise RuleSyntaxError(f"option {rest[:40]!r} is not terminated by ';'")
    return options


def _option(text: str) -> tuple[str, str]:
    keyword, _, value = text.partition(":")
    keyword = keyword.strip()
    if not keyword or _NOT_IN_KEYWORD.search(keyword):
        hint = " (a ';' inside a value must be written \\;)" if '"' in text else ""
        raise RuleSyntaxError(f"malformed option {text.strip()[:40]!r}{hint}")
    return keyword, value.strip()


def _header_tokens(header: str) -> list[str]:
    if "[" not in header and "]" not in header:
        return header.split()
    tokens, cur, depth = [], [], 0
    for ch in header:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch.isspace() and depth <= 0:
            if cur:
                tokens.append("".join(cur))
                cur = []
        elif not ch.isspace():
            cur.append(ch)
    if depth:
        raise RuleSyntaxError("unbalanced '[' in the header" if depth > 0 else "unbalanced ']' in the header")
    if cur:
        tokens.append("".join(cur))
    return tokens


def _buffer_protocol(buffer: str) -> str | None:
    head = buffer.split(".", 1)[0]
    return {"http": "http", "dns": "dns", "tls": "tls", "ja3": "tls", "ja3s": "tls", "ssh": "ssh"}.get(head)


class _Builder:
    """Mutable state while the options of one rule are read in order."""

    def __init__(self) -> None:
        self.fields: dict = {}
        self.matches: list[Match] = []
        self.last_content: int | None = None
        self.buffer = PAYLOAD
        self.sticky = False
        self.transforms: tuple[str, ...] = ()
        self.metadata: list[tuple[str, str]] = []
        self.references: list[Reference] = []
        self.flowbits: list[Flowbit] = []
        self.fast_pattern_seen = False
        self.content_mods: dict[int, set[str]] = {}

    def content(self) -> tuple[int, Content]:
        if self.last_content is None:
            raise RuleSyntaxError("content modifier without a preceding content")
        item = self.matches[self.last_content]
        assert isinstance(item, Content)
        return self.last_content, item

    def modify(self, keyword: str, **changes) -> None:
        index, item = self.content()
        seen = self.content_mods.setdefault(index, set())
        if keyword in seen:
            raise RuleSyntaxError(f"{keyword} given twice for one content")
        seen.add(keyword)
        new = dataclasses.replace(item, **changes)
        if (new.depth is not None or new.offset is not None) and new.relative:
            raise RuleSyntaxError("content mixes absolute (depth/offset) and relative (distance/within) modifiers")
        if new.startswith and (new.depth is not None or new.offset is not None or new.relative):
            raise RuleSyntaxError("startswith cannot be combined with depth, offset, distance or within")
        if new.negated and (new.fast_pattern_only or new.fast_pattern_chop):
            raise RuleSyntaxError("fast_pattern only/chop cannot be used on a negated content")
        self.matches[index] = new


def _apply(b: _Builder, keyword: str, value: str, classtypes: Mapping[str, Classtype]) -> None:
    f = b.fields
    if keyword in SINGLE and keyword in f:
        raise RuleSyntaxError(f"{keyword} given twice")
    if keyword == "msg":
        f["msg"] = _unescape(_quoted(value, "msg")[0], "msg", strict=False)
    elif keyword in ("sid", "rev", "gid", "priority"):
        f[keyword] = _int(value, keyword, lo=1 if keyword in ("sid", "gid", "priority") else 0)
    elif keyword == "classtype":
        if value not in classtypes:
            raise RuleSyntaxError(f"unknown classtype {value!r} (not in classification.config)")
        f["classtype"] = value
    elif keyword == "metadata":
        for part in _parts(value):
            if part:
                key, _, val = part.partition(" ")
                b.metadata.append((key, val.strip()))
    elif keyword == "reference":
        kind, sep, ref = value.partition(",")
        if not sep or not kind.strip() or not ref.strip():
            raise RuleSyntaxError("reference must be type,value")
        b.references.append(Reference(kind.strip(), ref.strip()))
    elif keyword == "target":
        if value not in ("src_ip", "dest_ip"):
            raise RuleSyntaxError(f"target must be src_ip or dest_ip, not {value!r}")
        f["target"] = value
    elif keyword in ("content", "uricontent"):  # uricontent: the legacy content + http_uri
        inner, negated = _quoted(value, keyword)
        if keyword == "uricontent":
            b.matches.append(Content(_content_bytes(inner), "http.uri", (), negated))
        else:
            b.matches.append(Content(_content_bytes(inner), b.buffer, b.transforms, negated))
        b.last_content = len(b.matches) - 1
    elif keyword in CONTENT_MODIFIERS:
        _content_modifier(b, keyword, value)
    elif keyword in LEGACY_MODIFIERS:
        index, item = b.content()
        if b.sticky or item.buffer != PAYLOAD:
            raise RuleSyntaxError(f"{keyword} cannot be used on a content in a sticky buffer ({item.buffer})")
        b.matches[index] = dataclasses.replace(item, buffer=LEGACY_MODIFIERS[keyword])
    elif keyword in STICKY_BUFFERS:
        b.buffer, b.sticky, b.transforms = STICKY_BUFFERS[keyword], True, ()
    elif keyword == "pkt_data":
        b.buffer, b.sticky, b.transforms = PAYLOAD, False, ()
    elif keyword in TRANSFORMS:
        if not b.sticky:
            raise RuleSyntaxError(f"transform {keyword} needs a sticky buffer before it")
        b.transforms = (*b.transforms, keyword)
    elif keyword == "pcre":
        b.matches.append(_pcre(value, b.buffer, b.sticky, b.transforms))
    elif keyword == "byte_test":
        b.matches.append(_byte_test(value, b.buffer, b.transforms))
    elif keyword == "byte_jump":
        b.matches.append(_byte_jump(value, b.buffer, b.transforms))
    elif keyword == "isdataat":
        b.matches.append(_isdataat(value, b.buffer, b.transforms))
    elif keyword == "bsize":
        b.matches.append(BufferSize(_number_test(value, "bsize"), b.buffer, b.transforms))
    elif keyword == "flow":
        f["flow"] = _flow(value)
    elif keyword == "flowbits":
        b.flowbits.append(_flowbit(value))
    elif keyword in ("dsize", "itype", "icode"):
        f[keyword] = _number_test(value, keyword)
    elif keyword == "urilen":
        num, _, mode = value.partition(",")
        if mode.strip() not in ("", "norm", "raw"):
            raise RuleSyntaxError(f"urilen mode must be norm or raw, not {mode.strip()!r}")
        f["urilen"] = _number_test(num, "urilen")
        f["urilen_raw"] = mode.strip() == "raw"
    elif keyword == "flags":
        f["flags"] = _flags(value)
    elif keyword == "ip_proto":
        f["ip_proto"] = _ip_proto(value)
    elif keyword == "threshold":
        f["threshold"] = _threshold(value, "threshold", typed=True)
    elif keyword == "detection_filter":
        f["detection_filter"] = _threshold(value, "detection_filter", typed=False)
    elif keyword == "noalert":
        f["noalert"] = True
    else:  # pragma: no cover - KEYWORDS and this chain are kept in step
        raise RuleSyntaxError(f"unsupported keyword {keyword}")


def _content_modifier(b: _Builder, keyword: str, value: str) -> None:
    if keyword in ("nocase", "startswith", "endswith", "rawbytes"):
        if value:
            raise RuleSyntaxError(f"{keyword} takes no value")
        b.modify(keyword, **{keyword: True})
    elif keyword in ("depth", "within"):
        b.modify(keyword, **{keyword: _int(value, keyword, lo=1)})
    elif keyword == "offset":
        b.modify(keyword, offset=_int(value, keyword, lo=0))
    elif keyword == "distance":
        b.modify(keyword, distance=_int(value, keyword, lo=None))
    elif keyword == "fast_pattern":
        if b.fast_pattern_seen:
            raise RuleSyntaxError("fast_pattern given on more than one content")
        b.fast_pattern_seen = True
        if not value:
            b.modify(keyword, fast_pattern=True)
        elif value == "only":
            b.modify(keyword, fast_pattern=True, fast_pattern_only=True)
        else:
            parts = _parts(value)
            if len(parts) != 2:
                raise RuleSyntaxError(f"fast_pattern expects nothing, 'only' or offset,length, got {value!r}")
            chop = (_int(parts[0], "fast_pattern offset"), _int(parts[1], "fast_pattern length", lo=1))
            b.modify(keyword, fast_pattern=True, fast_pattern_chop=chop)


def _check_content(c: Content) -> None:
    """The checks Suricata makes once a content's modifiers are all known."""
    size = len(c.pattern)
    if c.depth is not None and c.depth < size:
        raise RuleSyntaxError(f"depth {c.depth} is smaller than the content length {size}")
    if c.within is not None and c.within < size:
        raise RuleSyntaxError(f"within {c.within} is smaller than the content length {size}")
    if c.buffer == "http.host" and not c.nocase and c.pattern.lower() != c.pattern:
        raise RuleSyntaxError("http.host content has uppercase characters, but the buffer is lowercase "
                              "(write it in lowercase or add nocase)")


def parse_rule(text: str, variables: Variables, classtypes: Mapping[str, Classtype], *,
               path: str = "<rule>", line: int = 0) -> Rule:
    """Parse one rule (already joined onto one line); raise RuleSyntaxError with the reason."""
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")"):
        raise RuleSyntaxError("a rule needs its options in parentheses: header (options)")
    tokens = _header_tokens(text[:open_at])
    if len(tokens) != 7:
        raise RuleSyntaxError("header must be: action protocol source port direction destination port")
    action_s, proto, src_s, sport_s, dir_s, dst_s, dport_s = tokens
    try:
        action = Action(action_s)
    except ValueError:
        raise RuleSyntaxError(f"unknown action {action_s!r}") from None
    proto = proto.lower()
    if proto not in TRANSPORTS and proto not in APP_PROTOCOLS:
        raise RuleSyntaxError(f"unknown protocol {proto!r}")
    if dir_s not in ("->", "<>"):
        raise RuleSyntaxError(f"direction must be -> or <>, not {dir_s!r}")
    try:
        src, dst = variables.address(src_s), variables.address(dst_s)
        sport, dport = variables.port(sport_s), variables.port(dport_s)
    except SpecError as err:
        raise RuleSyntaxError(str(err)) from None

    options = split_options(text[open_at + 1:-1])
    builder = _Builder()
    for keyword, value in options:
        if keyword not in KEYWORDS:
            raise RuleSyntaxError(f"unsupported keyword {keyword}")
        _apply(builder, keyword, value, classtypes)

    f = builder.fields
    if "sid" not in f:
        raise RuleSyntaxError("missing sid")
    for m in builder.matches:
        if isinstance(m, Content):
            _check_content(m)
    for flowbit in builder.flowbits:
        if flowbit.command == "noalert":
            f["noalert"] = True
    app = proto if proto in APP_PROTOCOLS else None
    app_norm = "http" if app in ("http1", "http2") else app
    for m in builder.matches:
        needed = _buffer_protocol(m.buffer)
        if needed is None:
            continue
        if app_norm is None and proto in ("udp", "icmp", "icmpv4", "icmpv6") and needed != "dns":
            raise RuleSyntaxError(f"buffer {m.buffer} needs protocol {needed}, rule is {proto}")
        if app_norm is None or proto in TRANSPORTS and app_norm == needed:
            app = app_norm = needed
        elif app_norm != needed:
            raise RuleSyntaxError(f"buffer {m.buffer} needs protocol {needed}, rule is {app}")
    classtype = classtypes.get(f.get("classtype", ""))
    return Rule(
        action=action, protocol=proto, src=src, src_ports=sport,
        direction=Direction(dir_s), dst=dst, dst_ports=dport,
        category=classtype.description if classtype else None,
        priority=f.pop("priority", classtype.priority if classtype else 3),
        app_protocol=app, metadata=tuple(builder.metadata), references=tuple(builder.references),
        matches=tuple(builder.matches), flow=f.pop("flow", frozenset()), flowbits=tuple(builder.flowbits),
        options=tuple(options), path=path, line=line, text=text, **f,
    )
