"""A packet's header against the rules': the index that finds the header-only rules a packet's
addresses and ports can match (instead of testing every rule), the address/port/protocol test of
one rule, and TCP flags. Addresses are integers in IPv6 space, IPv4 as IPv4-mapped
(``recorder.core.flow.flowid.addr_int``)."""

from __future__ import annotations

import bisect
import collections
import functools

from analysis.rules.compiled import CompiledRule, evaluation_order
from analysis.rules.model import Direction, Rule

F_FIN, F_SYN, F_RST, F_PSH, F_ACK, F_URG, F_ECE, F_CWR = 1, 2, 4, 8, 16, 32, 64, 128
_FLAG_BITS = {"F": F_FIN, "S": F_SYN, "R": F_RST, "P": F_PSH, "A": F_ACK, "U": F_URG, "E": F_ECE, "C": F_CWR}
_V4_MAPPED = 0xFFFF  # the bits above an IPv4-mapped address's 32 (::ffff:a.b.c.d)
_V4_SPACE = 1 << 32
_NARROW = 1 / 16  # a dimension covering less than this share of its space is indexed
PORT_PROTOS = frozenset({6, 17, 132})


def _share(ranges, space: int) -> float:
    return sum(hi - lo + 1 for lo, hi in ranges) / space


def _addr_share(spec) -> float:
    return max(_share(spec.v4, _V4_SPACE), _share(spec.v6, 1 << 128))


def _addr_ranges(spec) -> list[tuple[int, int]]:
    """The spec's ranges in the engine's address space (IPv4 as IPv4-mapped IPv6)."""
    base = _V4_MAPPED << 32
    return [(base | lo, base | hi) for lo, hi in spec.v4] + list(spec.v6)


class HeaderIndex:
    """Header-only rules (ET's reputation lists, scans by port and flags...) by the most selective
    part of their header: source or destination addresses (a reputation list names thousands of
    addresses) or, for TCP/UDP/SCTP rules, source or destination ports. A packet finds the few that
    can apply with binary searches instead of testing every rule; a rule with no part covering
    less than 1/16 of its space (or with ``<>``) is tried on every packet (``broad``)."""

    _DIMENSIONS = (
        (lambda r: _addr_share(r.src), lambda r: _addr_ranges(r.src)),
        (lambda r: _addr_share(r.dst), lambda r: _addr_ranges(r.dst)),
        (lambda r: _share(r.src_ports.ranges, 65536), lambda r: list(r.src_ports.ranges)),
        (lambda r: _share(r.dst_ports.ranges, 65536), lambda r: list(r.dst_ports.ranges)),
    )

    def __init__(self, rules: list[CompiledRule]) -> None:
        placed: list[list[CompiledRule]] = [[], [], [], []]
        self.broad: list[CompiledRule] = []
        for c in rules:
            r = c.rule
            dims = 4 if c.protos is not None and c.protos <= PORT_PROTOS else 2
            shares = [self._DIMENSIONS[i][0](r) for i in range(dims)]
            best = min(range(dims), key=shares.__getitem__)
            if r.direction is Direction.TO_DST and shares[best] < _NARROW:
                placed[best].append(c)
            else:
                self.broad.append(c)
        self.indexes = [self._segments(placed[i], self._DIMENSIONS[i][1]) for i in range(4)]

    @staticmethod
    def _segments(rules: list[CompiledRule], ranges_of) -> tuple[list[int], list[tuple[CompiledRule, ...]]]:
        events: dict[int, list[tuple[int, CompiledRule]]] = {}
        for c in rules:
            for lo, hi in ranges_of(c.rule):
                events.setdefault(lo, []).append((1, c))
                events.setdefault(hi + 1, []).append((-1, c))
        points = sorted(events)
        active: collections.Counter = collections.Counter()
        active_rules: dict[int, CompiledRule] = {}
        sets = []
        for p in points:
            for delta, c in events[p]:
                active[c.index] += delta
                if not active[c.index]:
                    del active[c.index]
                else:
                    active_rules[c.index] = c
            sets.append(tuple(sorted((active_rules[i] for i in active), key=evaluation_order)))
        return points, sets

    def lookup(self, src: int, dst: int, sport: int, dport: int, ports: bool) -> list[CompiledRule]:
        """The rules that may apply to a packet with this header, in evaluation order."""
        out = list(self.broad)
        for value, (points, sets) in zip((src, dst, sport, dport) if ports else (src, dst), self.indexes):
            if points:
                i = bisect.bisect_right(points, value) - 1
                if i >= 0 and sets[i]:
                    out += sets[i]
        if len(out) > 1 and len(out) != len(self.broad):
            out.sort(key=evaluation_order)
        return out


def header_ok(rule: Rule, src: int, sport: int, dst: int, dport: int, ports: bool) -> bool:
    def one_way(s: int, sp: int, d: int, dp: int) -> bool:
        if not (rule.src.contains_int(s) and rule.dst.contains_int(d)):
            return False
        return not ports or (rule.src_ports.contains(sp) and rule.dst_ports.contains(dp))
    if one_way(src, sport, dst, dport):
        return True
    return rule.direction is Direction.BOTH and one_way(dst, dport, src, sport)


def static_ok(c: CompiledRule, proto: int, src: int, sport: int, dst: int, dport: int) -> bool:
    """Whether a rule's protocol, IP version, addresses and ports admit a packet of a flow."""
    if c.protos is not None and proto not in c.protos:
        return False
    if c.ipv4 is not None and ((src >> 32) == _V4_MAPPED) != c.ipv4:
        return False
    return header_ok(c.rule, src, sport, dst, dport, proto in PORT_PROTOS)


@functools.lru_cache(maxsize=256)
def flag_bits(test) -> tuple[int, int]:
    """(flags wanted, mask of flags considered) of a ``flags`` keyword; "0" wants none."""
    want = 0
    for ch in test.flags:
        want |= _FLAG_BITS.get(ch, 0)
    mask = 0xFF
    for ch in test.ignore:
        mask &= ~_FLAG_BITS.get(ch, 0)
    return want, mask


def flags_ok(test, flags: int) -> bool:
    want, mask = flag_bits(test)
    got = flags & mask
    if test.modifier == "+":
        return got & want == want
    if test.modifier == "*":
        return bool(got & want) if want else got == 0
    if test.modifier == "!":
        return not got & want
    return got == want
