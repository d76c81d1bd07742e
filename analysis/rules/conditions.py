"""A rule's conditions on one inspection other than its payload matches: the ``flow`` options, the
packet keywords (``dsize``, ``flags``, ``ip_proto``, ``itype``, ``icode``), flowbits, and the state
keywords (xbits, flowint, stream_size, tls.version: ``analysis.rules.statekeys``); and the flowbits
a match sets. ``analysis.rules.engine`` tries them in this order before the payload."""

from __future__ import annotations

from analysis.rules.flowstate import FlowState, Inspection
from analysis.rules.header import flags_ok
from analysis.rules.model import Rule
from analysis.rules.statekeys import XbitStore, flowints_ok, stream_size_ok


def flow_ok(opts: frozenset[str], insp: Inspection, packet: bool) -> bool:
    f = insp.flow
    if "to_server" in opts and not insp.to_server:
        return False
    if "to_client" in opts and insp.to_server:
        return False
    if "established" in opts and not f.established:
        return False
    if "not_established" in opts and f.established:
        return False
    if "stateless" in opts:
        return True
    if "only_stream" in opts and packet and insp.proto == 6 and not f.established:
        return False
    return True


def packet_ok(rule: Rule, insp: Inspection) -> bool:
    if rule.dsize is not None and (not rule.dsize.test(insp.dsize)):
        return False
    if rule.flags is not None and (insp.proto != 6 or not flags_ok(rule.flags, insp.flags)):
        return False
    if rule.ip_proto is not None and not rule.ip_proto.test(insp.proto):
        return False
    if rule.itype is not None and (insp.proto not in (1, 58) or not rule.itype.test(insp.itype)):
        return False
    if rule.icode is not None and (insp.proto not in (1, 58) or not rule.icode.test(insp.icode)):
        return False
    return True


def bits_ok(rule: Rule, f: FlowState) -> bool:
    for b in rule.flowbits:
        if b.command == "isset":
            have = [n in f.bits for n in b.names]
            if not (any(have) if b.any_of else all(have)):
                return False
        elif b.command == "isnotset":
            have = [n in f.bits for n in b.names]
            if any(have) if not b.any_of else all(have):
                return False
    return True


def state_ok(rule: Rule, insp: Inspection, xbits: XbitStore) -> bool:
    """xbits, flowint, stream_size and tls.version (``analysis.rules.statekeys``)."""
    if rule.xbits and not xbits.ok(rule.xbits, insp.src, insp.dst, insp.ts_ns):
        return False
    f = insp.flow
    if rule.flowints and not flowints_ok(rule.flowints, f.ints):
        return False
    if rule.stream_size:
        if insp.proto != 6:
            return False
        sizes = f.stream_sizes()
        if not all(stream_size_ok(s, sizes) for s in rule.stream_size):
            return False
    return rule.tls_version is None or f.tls_ver[0 if insp.to_server else 1] == rule.tls_version


def bits_apply(rule: Rule, f: FlowState) -> None:
    for b in rule.flowbits:
        if b.command == "set":
            f.bits.update(b.names)
        elif b.command == "unset":
            f.bits.difference_update(b.names)
        elif b.command == "toggle":
            for n in b.names:
                f.bits.symmetric_difference_update((n,))
