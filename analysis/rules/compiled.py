"""A rule as the engine needs it, precomputed once: the IP protocols its header covers, its
application protocol, whether it inspects application buffers or packets, whether its payload
matches may span TCP segments, and its place in Suricata's evaluation order."""

from __future__ import annotations

from dataclasses import dataclass

from analysis.rules.model import PAYLOAD, Action, Content, Pcre, Rule

# IP protocols a rule's header protocol covers (None: any)
TRANSPORT_PROTOS: dict[str, frozenset[int] | None] = {
    "ip": None, "ipv4": None, "ipv6": None, "tcp": frozenset({6}), "tcp-pkt": frozenset({6}), "tcp-stream": frozenset({6}),
    "udp": frozenset({17}), "icmp": frozenset({1, 58}), "icmpv4": frozenset({1}), "icmpv6": frozenset({58}),
    "sctp": frozenset({132}),
}
APP_ALIASES = {"http1": "http", "http2": "http2"}


def app_of(rule: Rule) -> str | None:
    app = rule.app_protocol
    if app is None and rule.protocol not in TRANSPORT_PROTOS:
        app = rule.protocol
    return APP_ALIASES.get(app, app) if app else None


@dataclass(slots=True)
class CompiledRule:
    """What the engine needs of one rule, precomputed."""

    index: int
    rule: Rule
    protos: frozenset[int] | None
    app: str | None
    app_layer: bool  # inspects application buffers (else packet payload / header only)
    ipv4: bool | None  # ipv4 / ipv6 rules: only that IP version
    order: tuple
    stream: bool = False  # may match across TCP segments (its payload matches float freely)
    stream_only: bool = False  # tcp-stream or flow:only_stream: never on a packet alone
    stateful: bool = False  # has xbits, flowint, stream_size or tls.version (``analysis.rules.statekeys``)


def compile_rule(i: int, rule: Rule) -> CompiledRule:
    app = app_of(rule)
    protos = TRANSPORT_PROTOS.get(rule.protocol)
    if rule.protocol not in TRANSPORT_PROTOS:
        protos = frozenset({17, 6}) if app in ("dns", "quic", "krb5", "ntp", "dhcp", "snmp", "tftp", "sip") \
            else frozenset({6})
    buffers = rule.buffers
    # a rule naming an application protocol but no buffer of it (`alert http any any -> any any
    # (sid:1;)`) is a packet rule: as in Suricata, it matches every packet of the flow from the one
    # whose payload made the protocol known
    app_layer = bool(buffers - {PAYLOAD})
    sets = (any(b.command in ("set", "unset", "toggle") for b in (*rule.flowbits, *rule.xbits))
            or any(v.modifies for v in rule.flowints))
    checks = (any(b.command in ("isset", "isnotset") for b in (*rule.flowbits, *rule.xbits))
              or any(not v.modifies for v in rule.flowints))
    # Suricata's order: pass first, then flowbit setters before readers, then priority.
    order = (rule.action is not Action.PASS, not sets or checks, rule.priority, i)
    ipv4 = {"ipv4": True, "ipv6": False}.get(rule.protocol)
    stream_only = rule.protocol == "tcp-stream" or "only_stream" in rule.flow
    stream = (not app_layer and rule.protocol in ("tcp", "tcp-stream") and bool(rule.matches)
              and rule.dsize is None and "no_stream" not in rule.flow and all(map(floats_freely, rule.matches)))
    stateful = bool(rule.xbits or rule.flowints or rule.stream_size or rule.tls_version is not None)
    return CompiledRule(i, rule, protos, app, app_layer, ipv4, order, stream, stream_only and stream, stateful)


def floats_freely(m) -> bool:
    """A payload match that means the same in a stream as in a packet: a content or pcre not tied
    to the start or end of the buffer (relative ones are tied to the match before them)."""
    if isinstance(m, Content):
        return (m.buffer == PAYLOAD and not m.negated and m.depth is None and m.offset is None
                and not m.startswith and not m.endswith)
    if isinstance(m, Pcre):
        return m.buffer == PAYLOAD and not m.negated and not m.anchored and "^" not in m.source and "$" not in m.source
    return False


def evaluation_order(c: CompiledRule) -> tuple:
    return c.order
