"""Parse one Suricata-syntax rule into a :class:`~analysis.rules.model.Rule` (files are read by
``analysis.rules.loader``, each option's value parsed by ``analysis.rules.values``, PCRE translated
by ``analysis.rules.pcre``).

A bad rule raises :class:`RuleSyntaxError` with the reason, which the loader records as a
:class:`RuleError` with ``path:line`` before reading the next one. A keyword the engine does not
implement rejects its rule with ``unsupported keyword X``: the supported ones are the keys of
:data:`KEYWORDS`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from analysis.rules.classification import Classtype
from analysis.rules.model import (
    BASE64_DATA,
    PAYLOAD,
    Action,
    Base64Decode,
    BufferSize,
    Content,
    Direction,
    Flowbit,
    Match,
    Reference,
    Rule,
    RuleSyntaxError,
)
from analysis.rules.statekeys import (
    Flowint,
    StreamSize,
    Xbit,
    base64_decode_value,
    byte_extract_value,
    check_tag,
    dce_iface_value,
    dce_opnum_value,
    flowint_value,
    stream_size_value,
    tls_version_value,
    xbit_value,
)
from analysis.rules.values import (
    byte_jump,
    byte_test,
    content_bytes,
    flags_value,
    flow_value,
    flowbit_value,
    int_value,
    ip_proto,
    isdataat,
    number_test,
    pcre_value,
    quoted,
    split_commas,
    threshold_value,
    unescape,
)
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
    "dce_stub_data": "dce.stub_data",
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
    "byte_extract", "dce_iface", "dce_opnum", "xbits", "flowint", "stream_size", "tls.version", "tag", "base64_decode", "base64_data",
})
KEYWORDS: frozenset[str] = (OTHER_KEYWORDS | CONTENT_MODIFIERS | TRANSFORMS | STICKY_BUFFERS.keys()
                            | LEGACY_MODIFIERS.keys())
SINGLE = frozenset({"msg", "sid", "rev", "gid", "classtype", "priority", "flow", "dsize", "urilen",
                    "flags", "ip_proto", "itype", "icode", "threshold", "detection_filter", "target",
                    "tls_version"})



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
        self.xbits: list[Xbit] = []
        self.extracted: set[str] = set()  # byte_extract variable names so far
        self.flowints: list[Flowint] = []
        self.stream_sizes: list[StreamSize] = []
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
        f["msg"] = unescape(quoted(value, "msg")[0], "msg", strict=False)
    elif keyword in ("sid", "rev", "gid", "priority"):
        f[keyword] = int_value(value, keyword, lo=1 if keyword in ("sid", "gid", "priority") else 0)
    elif keyword == "classtype":
        if value not in classtypes:
            raise RuleSyntaxError(f"unknown classtype {value!r} (not in classification.config)")
        f["classtype"] = value
    elif keyword == "metadata":
        for part in split_commas(value):
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
        inner, negated = quoted(value, keyword)
        if keyword == "uricontent":
            b.matches.append(Content(content_bytes(inner), "http.uri", (), negated))
        else:
            b.matches.append(Content(content_bytes(inner), b.buffer, b.transforms, negated))
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
        b.matches.append(pcre_value(value, b.buffer, b.sticky, b.transforms))
    elif keyword == "byte_test":
        b.matches.append(byte_test(value, b.buffer, b.transforms, frozenset(b.extracted)))
    elif keyword == "byte_jump":
        b.matches.append(byte_jump(value, b.buffer, b.transforms))
    elif keyword == "isdataat":
        b.matches.append(isdataat(value, b.buffer, b.transforms))
    elif keyword == "bsize":
        b.matches.append(BufferSize(number_test(value, "bsize"), b.buffer, b.transforms))
    elif keyword == "flow":
        f["flow"] = flow_value(value)
    elif keyword == "flowbits":
        b.flowbits.append(flowbit_value(value))
    elif keyword in ("dsize", "itype", "icode"):
        f[keyword] = number_test(value, keyword)
    elif keyword == "urilen":
        num, _, mode = value.partition(",")
        if mode.strip() not in ("", "norm", "raw"):
            raise RuleSyntaxError(f"urilen mode must be norm or raw, not {mode.strip()!r}")
        f["urilen"] = number_test(num, "urilen")
        f["urilen_raw"] = mode.strip() == "raw"
    elif keyword == "flags":
        f["flags"] = flags_value(value)
    elif keyword == "ip_proto":
        f["ip_proto"] = ip_proto(value)
    elif keyword == "threshold":
        f["threshold"] = threshold_value(value, "threshold", typed=True)
    elif keyword == "detection_filter":
        f["detection_filter"] = threshold_value(value, "detection_filter", typed=False)
    elif keyword == "noalert":
        f["noalert"] = True
    else:
        _apply_state(b, keyword, value)


def _apply_state(b: _Builder, keyword: str, value: str) -> None:
    """The keywords of ``analysis.rules.statekeys`` and base64_decode / base64_data."""
    f = b.fields
    if keyword == "xbits":
        b.xbits.append(xbit_value(value))
    elif keyword == "byte_extract":
        m = byte_extract_value(value, b.buffer, b.transforms)
        b.extracted.add(m.name)
        b.matches.append(m)
    elif keyword == "dce_iface":
        b.matches.append(dce_iface_value(value))
    elif keyword == "dce_opnum":
        b.matches.append(dce_opnum_value(value))
    elif keyword == "flowint":
        b.flowints.append(flowint_value(value))
    elif keyword == "stream_size":
        b.stream_sizes.append(stream_size_value(value))
    elif keyword == "tls.version":
        if "tls_version" in f:
            raise RuleSyntaxError("tls.version given twice")
        f["tls_version"] = tls_version_value(value)
    elif keyword == "tag":
        check_tag(value)
    elif keyword == "base64_decode":
        if b.buffer == BASE64_DATA:
            raise RuleSyntaxError("base64_decode cannot inspect base64_data")
        b.matches.append(base64_decode_value(value, b.buffer, b.transforms))
    elif keyword == "base64_data":
        if value:
            raise RuleSyntaxError("base64_data takes no value")
        if not any(isinstance(m, Base64Decode) for m in b.matches):
            raise RuleSyntaxError("base64_data needs a base64_decode before it")
        b.buffer, b.sticky, b.transforms = BASE64_DATA, True, ()
    else:  # pragma: no cover - KEYWORDS and this chain are kept in step
        raise RuleSyntaxError(f"unsupported keyword {keyword}")


def _content_modifier(b: _Builder, keyword: str, value: str) -> None:
    if keyword in ("nocase", "startswith", "endswith", "rawbytes"):
        if value:
            raise RuleSyntaxError(f"{keyword} takes no value")
        b.modify(keyword, **{keyword: True})
    elif keyword in ("depth", "within"):
        b.modify(keyword, **{keyword: int_value(value, keyword, lo=1)})
    elif keyword == "offset":
        b.modify(keyword, offset=int_value(value, keyword, lo=0))
    elif keyword == "distance":
        b.modify(keyword, distance=int_value(value, keyword, lo=None))
    elif keyword == "fast_pattern":
        if b.fast_pattern_seen:
            raise RuleSyntaxError("fast_pattern given on more than one content")
        b.fast_pattern_seen = True
        if not value:
            b.modify(keyword, fast_pattern=True)
        elif value == "only":
            b.modify(keyword, fast_pattern=True, fast_pattern_only=True)
        else:
            parts = split_commas(value)
            if len(parts) != 2:
                raise RuleSyntaxError(f"fast_pattern expects nothing, 'only' or offset,length, got {value!r}")
            chop = (int_value(parts[0], "fast_pattern offset"), int_value(parts[1], "fast_pattern length", lo=1))
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
    if "tls_version" in f:  # Suricata sets the rule's protocol to TLS
        if app_norm is None and proto in ("tcp", "tcp-pkt", "tcp-stream"):
            app = "tls"
        elif app_norm != "tls":
            raise RuleSyntaxError(f"tls.version needs protocol tls, rule is {app or proto}")
    classtype = classtypes.get(f.get("classtype", ""))
    return Rule(
        action=action, protocol=proto, src=src, src_ports=sport,
        direction=Direction(dir_s), dst=dst, dst_ports=dport,
        category=classtype.description if classtype else None,
        priority=f.pop("priority", classtype.priority if classtype else 3),
        app_protocol=app, metadata=tuple(builder.metadata), references=tuple(builder.references),
        matches=tuple(builder.matches), flow=f.pop("flow", frozenset()), flowbits=tuple(builder.flowbits),
        xbits=tuple(builder.xbits), flowints=tuple(builder.flowints), stream_size=tuple(builder.stream_sizes),
        options=tuple(options), path=path, line=line, text=text, **f,
    )
