"""Payload inspection: a rule's content, pcre, byte_test, byte_jump, isdataat and bsize over byte buffers.

``match_payload(rule, buffers)`` answers whether the payload part of a rule matches, with the
semantics of Suricata's content inspection engine (``detect-engine-content-inspection.c``):

- The matches of one buffer (its name and transforms) form one inspection list, in rule order; a
  cursor (Suricata's ``buffer_offset``) is the end of the previous match in that list, and
  ``distance``/``within``, pcre ``/R`` and ``relative`` byte_test/byte_jump/isdataat start from it.
- When a later keyword fails, the content (or pcre) it depends on is retried at its next occurrence
  (one byte after the start of the previous one), as Suricata does: a content is retried only when a
  keyword relative to it other than a plain non-negated ``distance`` follows (Suricata's
  ``WITHIN_NEXT`` flag), a pcre whenever a relative keyword follows. An absolute content that is not
  found, an absolute isdataat that fails and a negated "single" content that is found end the whole
  inspection; the recursion is bounded by Suricata's default inspection-recursion-limit (3000).
- A missing buffer (absent key or ``None``) fails the rule; an empty one is inspected (``bsize:0``).

Differences from Suricata, by necessity: pcre runs on Python ``re`` (no PCRE match limits, the
``E`` flag is ignored); ``dce`` byte_test/byte_jump read little-endian (the usual NDR data
representation; Suricata takes it from the DCE/RPC header, which this engine does not track).

Plans are compiled once per rule object (cached by identity) so that a rule whose required contents
are absent from the buffer costs one substring search.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from analysis.rules.bytekeys import base64_rfc4648, byte_extract, byte_jump, byte_test
from analysis.rules.model import (
    BASE64_DATA,
    PAYLOAD,
    Base64Decode,
    BufferSize,
    ByteExtract,
    ByteJump,
    ByteTest,
    Content,
    DceIface,
    DceOpnum,
    IsDataAt,
    Pcre,
    Rule,
)
from analysis.rules.statekeys import dce_iface_ok, dce_opnum_ok
from analysis.rules.transforms import apply_transforms

RECURSION_LIMIT = 3000  # Suricata's detect.inspection-recursion-limit default

# step kinds
_CONTENT, _PCRE, _BYTETEST, _BYTEJUMP, _ISDATAAT, _BSIZE, _B64, _DCE, _EXTRACT = range(9)


# --- the compiled plan ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Step:
    kind: int
    item: object  # the model object
    last: bool
    # content / pcre: whether a failure of what follows retries this one at its next occurrence
    backtrack: bool = False
    # content only, precomputed
    pattern: bytes = b""
    nocase: bool = False
    negated: bool = False
    relative: bool = False
    has_distance: bool = False
    has_within: bool = False
    distance: int = 0
    within: int = 0
    depth: int = 0
    offset: int = 0
    endswith: bool = False
    single: bool = False


@dataclass(frozen=True, slots=True)
class _Group:
    buffer: str
    transforms: tuple[str, ...]
    steps: tuple[_Step, ...]
    needs_lower: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    groups: tuple[_Group, ...]
    # (buffer, transforms, pattern, nocase) of every non-negated content: each must occur somewhere
    required: tuple[tuple[str, tuple[str, ...], bytes, bool], ...]


def _previous(matches, i: int) -> int | None:
    """The keyword a relative byte_test/byte_jump/isdataat attaches to (Suricata's prev_pm)."""
    return next((j for j in range(i - 1, -1, -1)
                 if isinstance(matches[j], Content | Pcre | ByteTest | ByteJump | IsDataAt | ByteExtract)), None)


def _compile(rule: Rule) -> _Plan:
    # Suricata turns `isdataat:!1,relative` right after a content into that content's endswith
    ends: set[int] = set()
    dropped: set[int] = set()
    for i, m in enumerate(rule.matches):
        if isinstance(m, IsDataAt) and m.negated and m.relative and m.offset == 1:
            prev = _previous(rule.matches, i)
            if prev is not None and isinstance(rule.matches[prev], Content):
                ends.add(prev)
                dropped.add(i)
    order: list[tuple[str, tuple[str, ...]]] = []
    members: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for i, m in enumerate(rule.matches):
        if i in dropped:
            continue
        key = (m.buffer or PAYLOAD, tuple(m.transforms))
        if key not in members:
            members[key] = []
            order.append(key)
        members[key].append(i)

    # Suricata's flags on a content/pcre that a later keyword is relative to: WITHIN_NEXT (set by
    # within, by a negated distance and by pcre/R, byte_*/isdataat relative) makes a content retried at
    # its next occurrence; DISTANCE_NEXT (a plain distance) does not; either makes it "not single".
    within_next: set[int] = set()
    relative_next: set[int] = set()
    matches = rule.matches
    for key in order:
        idx = members[key]
        for pos, i in enumerate(idx):
            m = matches[i]
            if not (isinstance(m, Content) and m.relative or isinstance(m, Pcre) and m.relative):
                continue
            prev = next((j for j in reversed(idx[:pos]) if isinstance(matches[j], Content | Pcre)), None)
            if prev is None:
                continue
            relative_next.add(prev)
            if isinstance(m, Pcre) or m.within is not None or m.negated or isinstance(matches[prev], Pcre):
                within_next.add(prev)
    for i, m in enumerate(matches):
        if isinstance(m, ByteTest | ByteJump | IsDataAt | ByteExtract) and m.relative and i not in dropped:
            prev = _previous(matches, i)
            if prev is not None and isinstance(matches[prev], Content | Pcre):
                relative_next.add(prev)
                within_next.add(prev)

    groups = []
    required = []
    for key in order:
        idx = members[key]
        steps = []
        lower = False
        for pos, i in enumerate(idx):
            m = matches[i]
            last = pos == len(idx) - 1
            if isinstance(m, Content):
                offset = m.offset or 0
                depth = (m.depth + offset) if m.depth else 0  # depth counts from the offset, as in Suricata
                if m.startswith:
                    depth, offset = len(m.pattern), 0
                relative = m.relative
                steps.append(_Step(
                    _CONTENT, m, last, backtrack=i in within_next,
                    pattern=m.pattern.lower() if m.nocase else m.pattern, nocase=m.nocase, negated=m.negated,
                    relative=relative, has_distance=m.distance is not None, has_within=m.within is not None,
                    distance=m.distance or 0, within=m.within or 0, depth=depth, offset=offset,
                    endswith=m.endswith or i in ends,
                    single=not (relative or i in relative_next or m.depth is not None or m.offset is not None
                                or m.startswith)))
                lower = lower or m.nocase
                if not m.negated:
                    required.append((key[0], key[1], m.pattern.lower() if m.nocase else m.pattern, m.nocase))
            elif isinstance(m, Pcre):
                steps.append(_Step(_PCRE, m, last, backtrack=i in relative_next))
            elif isinstance(m, ByteTest):
                steps.append(_Step(_BYTETEST, m, last))
            elif isinstance(m, ByteJump):
                steps.append(_Step(_BYTEJUMP, m, last))
            elif isinstance(m, IsDataAt):
                steps.append(_Step(_ISDATAAT, m, last))
            elif isinstance(m, BufferSize):
                steps.append(_Step(_BSIZE, m, last))
            elif isinstance(m, Base64Decode):
                steps.append(_Step(_B64, m, last))
            elif isinstance(m, ByteExtract):
                steps.append(_Step(_EXTRACT, m, last))
            elif isinstance(m, DceIface | DceOpnum):
                steps.append(_Step(_DCE, m, last))
        groups.append(_Group(key[0], key[1], tuple(steps), lower))
    # base64_data's matches run only inside base64_decode's step, on what it decoded
    b64 = next((g for g in groups if g.buffer == BASE64_DATA), None)
    if b64 is not None or any(isinstance(m, Base64Decode) for m in matches):
        groups = [dataclasses.replace(g, steps=tuple(dataclasses.replace(st, item=(st.item, b64))
                                                        if st.kind == _B64 else st for st in g.steps))
                  for g in groups if g.buffer != BASE64_DATA]
        required = [r for r in required if r[0] != BASE64_DATA]
    # longest first: the rarest pattern usually rules the rule out soonest
    required.sort(key=lambda r: -len(r[2]))
    return _Plan(tuple(groups), tuple(required))


class _PlanCache:
    """Compiled plans by rule identity (the rule is kept, so its id cannot be reused), and the last
    buffer lowercased (the same bytes object is inspected by many rules in a row)."""

    __slots__ = ("last", "plans")

    def __init__(self) -> None:
        self.plans: dict[int, tuple[Rule, _Plan]] = {}
        self.last: tuple[bytes, bytes] = (b"", b"")  # (raw, lowered), swapped as one object

    def lower(self, data: bytes) -> bytes:
        last = self.last
        if data is last[0]:
            return last[1]
        low = data.lower()
        self.last = (data, low)
        return low

    def get(self, rule: Rule) -> _Plan:
        hit = self.plans.get(id(rule))
        if hit is not None and hit[0] is rule:
            return hit[1]
        if len(self.plans) > 200_000:
            self.plans.clear()
        plan = _compile(rule)
        self.plans[id(rule)] = (rule, plan)
        return plan


_CACHE = _PlanCache()


def compile_rule(rule: Rule) -> None:
    """Compile (and cache) the rule's inspection plan ahead of the first packet."""
    _CACHE.get(rule)


# --- the inspection ------------------------------------------------------------------------------

class _Inspection:
    """One buffer's inspection list run over one buffer: Suricata's recursive matcher."""

    __slots__ = ("buf", "lower", "size", "steps", "cursor", "count", "names")

    def __init__(self, buf: bytes, lower: bytes | None, steps: tuple[_Step, ...]) -> None:
        self.buf = buf
        self.lower = lower
        self.size = len(buf)
        self.steps = steps
        self.cursor = 0
        self.count = 0
        self.names: dict[str, int] | None = None  # byte_extract variables

    def next(self, i: int) -> int:
        """The step after ``i`` matched: go on, or the list matched."""
        if self.steps[i].last:
            return 1
        return self.run(i + 1)

    def run(self, i: int) -> int:
        """1 match, 0 no match, -1 no match and give up (Suricata's discontinue)."""
        self.count += 1
        if self.count >= RECURSION_LIMIT:
            return -1
        step = self.steps[i]
        kind = step.kind
        if kind == _CONTENT:
            return self._content(i, step)
        if kind == _PCRE:
            return self._pcre(i, step)
        size = self.size
        if kind == _ISDATAAT:
            d: IsDataAt = step.item  # type: ignore[assignment]
            if d.relative:
                if self.cursor + d.offset > size:
                    return self.next(i) if d.negated else -1
                return 0 if d.negated else self.next(i)
            if d.offset < size:
                return -1 if d.negated else self.next(i)
            return self.next(i) if d.negated else -1
        if kind == _BYTETEST:
            return self.next(i) if byte_test(step.item, self.buf, self.cursor, self.names) else 0  # type: ignore[arg-type]
        if kind == _EXTRACT:
            got = byte_extract(step.item, self.buf, self.cursor)  # type: ignore[arg-type]
            if got is None:
                return 0
            if self.names is None:
                self.names = {}
            self.names[step.item.name], self.cursor = got  # type: ignore[attr-defined]
            return self.next(i)
        if kind == _BYTEJUMP:
            target = byte_jump(step.item, self.buf, self.cursor)  # type: ignore[arg-type]
            if target is None:
                return 0
            self.cursor = target
            return self.next(i)
        if kind == _B64:
            return self._base64(i, step)
        if kind == _DCE:
            ok = dce_iface_ok if isinstance(step.item, DceIface) else dce_opnum_ok
            return self.next(i) if ok(step.item, self.buf) else -1  # type: ignore[arg-type]
        # bsize
        b: BufferSize = step.item  # type: ignore[assignment]
        return self.next(i) if b.test.test(size) else 0

    def _base64(self, i: int, s: _Step) -> int:
        """base64_decode, then base64_data's matches on the result (a terminal list, as in Suricata)."""
        d, group = s.item  # type: ignore[misc]
        start = (self.cursor if d.relative else 0) + d.offset
        if start >= self.size:
            return 0
        end = self.size if not d.nbytes else min(self.size, start + d.nbytes)
        decoded = base64_rfc4648(self.buf[start:end])
        if not decoded:
            return 0
        if group is None or not group.steps:
            return self.next(i)
        run = _Inspection(decoded, decoded.lower() if group.needs_lower else None, group.steps)
        return 1 if run.run(0) == 1 else 0

    def _content(self, i: int, s: _Step) -> int:
        size = self.size
        hay = self.lower if s.nocase else self.buf
        assert hay is not None
        pat = s.pattern
        plen = len(pat)
        prev_cursor = self.cursor
        prev_offset = 0
        while True:
            depth = size
            if s.relative:
                offset = prev_cursor
                dist = s.distance
                if s.has_distance:
                    if dist < 0 and -dist > offset:
                        offset = 0
                    else:
                        offset += dist
                if s.has_within:
                    limit = prev_cursor + s.within + dist
                    if limit >= 0 and depth > limit:  # a negative limit wraps (uint32) and is clipped
                        depth = limit
                if s.depth and s.depth + prev_cursor < depth:
                    depth = prev_cursor + s.depth
                if s.offset > offset:
                    offset = s.offset
            else:
                if s.depth:
                    depth = s.depth
                offset = s.offset
            if prev_offset:
                offset = prev_offset
            if depth > size:
                depth = size
            if offset > depth or depth == 0:
                return self.next(i) if s.negated else 0
            window = depth - offset
            if (s.endswith and depth < size) or plen > window:
                found = -1
            else:
                found = hay.find(pat, offset, depth)
            if found < 0:
                if not s.negated:
                    return 0 if s.relative else -1
                return self.next(i)
            end = found + plen
            if s.negated:
                if s.endswith and window != end:
                    return self.next(i)
                return -1 if s.single else 0
            self.cursor = end
            if not s.endswith or end == size:
                if s.last:
                    return 1
                r = self.run(i + 1)
                if r == 1:
                    return 1
                if r == -1:
                    return -1
                if not s.backtrack:
                    return -1
            prev_offset = end - (plen - 1)

    def _pcre(self, i: int, s: _Step) -> int:
        p: Pcre = s.item  # type: ignore[assignment]
        prev_cursor = self.cursor
        start = 0  # Suricata's pcre_match_start_offset (absolute; 0 = none)
        while True:
            if p.relative:
                base = self.cursor
                subject = self.buf[base:] if base else self.buf
            else:
                base = 0
                subject = self.buf
            pos = start - base if start else 0
            if pos > len(subject) or pos < 0:
                return 0
            m = p.regex.match(subject, pos) if p.anchored else p.regex.search(subject, pos)
            if m is None:
                if not p.negated:
                    return 0
                start = 0
            else:
                if p.negated:
                    return 0
                self.cursor = base + m.end()
                start = base + m.start() + 1
            if not s.backtrack:
                return self.next(i)
            if s.last:
                return 1
            prev_start = start
            r = self.run(i + 1)
            if r == 1:
                return 1
            if r == -1:
                return -1
            if prev_start == 0:
                return 0
            self.cursor = prev_cursor
            start = prev_start


def inspect_buffer(rule: Rule, data: bytes, buffer: str = PAYLOAD) -> tuple[bool, int]:
    """Run the rule's inspection list of one buffer over ``data`` (transforms already applied):
    (matched, steps), steps counted as Suricata's inspection-recursion counter counts them."""
    plan = _CACHE.get(rule)
    for group in plan.groups:
        if group.buffer == buffer and group.steps:
            run = _Inspection(data, data.lower() if group.needs_lower else None, group.steps)
            return run.run(0) == 1, run.count
    return True, 0


def match_payload(rule: Rule, buffers: Mapping[str, bytes | None]) -> bool:
    """Whether every payload inspection of ``rule`` (content, pcre, byte_*, isdataat, bsize) matches.

    ``buffers`` maps a buffer name (``payload``, ``http.uri``, ``file.data``, ``dns.query``...) to its
    bytes, before any transform; a buffer the rule needs that is missing or None fails the rule. A rule
    with no payload inspection matches.
    """
    plan = _CACHE.get(rule)
    if not plan.groups:
        return True
    views: dict[tuple[str, tuple[str, ...]], bytes] = {}
    lowers: dict[tuple[str, tuple[str, ...]], bytes] = {}
    for group in plan.groups:
        raw = buffers.get(group.buffer)
        if raw is None:
            return False
        views[(group.buffer, group.transforms)] = apply_transforms(raw, group.transforms) if group.transforms else raw
    for buffer, transforms, pattern, nocase in plan.required:
        key = (buffer, transforms)
        data = views[key]
        if nocase:
            low = lowers.get(key)
            if low is None:
                low = lowers[key] = _CACHE.lower(data)
            data = low
        if pattern not in data:
            return False
    for group in plan.groups:
        key = (group.buffer, group.transforms)
        data = views[key]
        low = None
        if group.needs_lower:
            low = lowers.get(key)
            if low is None:
                low = lowers[key] = _CACHE.lower(data)
        if not group.steps:
            continue
        try:
            if _Inspection(data, low, group.steps).run(0) != 1:
                return False
        except RecursionError:  # a rule with hundreds of keywords in one buffer: treat as no match
            return False
    return True


__all__ = ["RECURSION_LIMIT", "base64_rfc4648", "compile_rule", "inspect_buffer", "match_payload"]
