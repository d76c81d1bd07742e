"""The multi-pattern prefilter: which rules are worth trying on a set of buffers.

Each rule has at most one *fast pattern*, chosen as Suricata does (``fast_pattern`` when the rule
says so, with ``fast_pattern_chop``; else among the contents of the highest-priority buffer the
longest, then the most varied by Suricata's pattern strength, then the first; negated contents only
when the rule has no other). One Aho-Corasick automaton per buffer (name and transforms) holds every
fast pattern, lowercased: a rule is a candidate when its fast pattern occurs in its buffer (case is
left to ``match_payload`` to confirm). Rules without a fast pattern, or whose fast pattern is negated,
are candidates whenever all their buffers are present. Patterns of one or two bytes, which would hit
at nearly every offset of binary data, are checked with a plain substring search instead.

pyahocorasick stores ``str`` keys, so bytes travel as Latin-1 text (one character per byte).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from analysis.rules.match import apply_transforms
from analysis.rules.model import PAYLOAD, Content, Rule

_SHORT = 2  # patterns this long or shorter are searched with `in`, not through the automaton

# Suricata's buffer priorities for fast pattern selection (lower wins): application-layer buffers 2,
# the packet/stream payload 3, http.method 4 (its docs: "http_method ... has lower priority than the
# general content buffer").
_PRIORITY = {PAYLOAD: 3, "http.method": 4}
_APP_PRIORITY = 2


def pattern_strength(pattern: bytes) -> int:
    """Suricata's PatternStrength: distinct letters 3, distinct printable (or 00, 01, FF) 4, other 6, repeats 1."""
    seen: set[int] = set()
    score = 0
    for ch in pattern:
        if ch in seen:
            score += 1
            continue
        seen.add(ch)
        if 0x41 <= ch <= 0x5A or 0x61 <= ch <= 0x7A:
            score += 3
        elif 0x20 <= ch <= 0x7E or ch in (0x00, 0x01, 0xFF):
            score += 4
        else:
            score += 6
    return score


def fast_pattern_content(rule: Rule) -> Content | None:
    """The content Suricata would feed to its multi-pattern matcher, or None when the rule has none."""
    contents = [m for m in rule.matches if isinstance(m, Content)]
    if not contents:
        return None
    for c in contents:
        if c.fast_pattern:
            return c
    pool = [c for c in contents if not c.negated] or contents
    best_priority = min(_PRIORITY.get(c.buffer, _APP_PRIORITY) for c in pool)
    pool = [c for c in pool if _PRIORITY.get(c.buffer, _APP_PRIORITY) == best_priority]
    longest = max(len(c.pattern) for c in pool)
    pool = [c for c in pool if len(c.pattern) == longest]
    if len(pool) > 1:
        strongest = max(pattern_strength(c.pattern) for c in pool)
        pool = [c for c in pool if pattern_strength(c.pattern) == strongest]
    return pool[0]


def _chopped(c: Content) -> bytes:
    if c.fast_pattern_chop is not None:
        start, length = c.fast_pattern_chop
        chopped = c.pattern[start:start + length]
        if chopped:
            return chopped
    return c.pattern


def fast_pattern(rule: Rule) -> tuple[str, bytes, bool] | None:
    """(buffer, pattern bytes, nocase) of the rule's fast pattern, or None when it has no content."""
    c = fast_pattern_content(rule)
    if c is None:
        return None
    return c.buffer, _chopped(c), c.nocase


def _load_automaton():
    try:
        import ahocorasick  # noqa: PLC0415 - optional speed-up, imported only where used
    except ImportError:  # pragma: no cover - the dependency is declared; this keeps a fallback
        return None
    return ahocorasick


class _Bucket:
    """The fast patterns of one buffer (name and transforms)."""

    __slots__ = ("automaton", "by_id", "long", "short")

    def __init__(self) -> None:
        self.long: dict[str, list[int]] = {}  # lowercased Latin-1 pattern -> rule indexes
        self.by_id: list[tuple[int, ...]] = []  # automaton value -> rule indexes
        self.short: dict[bytes, list[int]] = {}  # lowercased pattern of 1-2 bytes -> rule indexes
        self.automaton = None


class Prefilter:
    """Pick, for a set of buffers, the rules whose fast pattern occurs (indexes into ``rules``)."""

    def __init__(self, rules: Sequence[Rule], *, use_automaton: bool = True) -> None:
        self._buckets: dict[tuple[str, tuple[str, ...]], _Bucket] = {}
        # rules always tried, grouped by the buffers they need: (buffers, indexes)
        always: dict[frozenset[str], list[int]] = {}
        for index, rule in enumerate(rules):
            c = fast_pattern_content(rule)
            if c is None or c.negated:
                always.setdefault(rule.buffers, []).append(index)
                continue
            bucket = self._buckets.setdefault((c.buffer, tuple(c.transforms)), _Bucket())
            pattern = _chopped(c).lower()
            if len(pattern) <= _SHORT:
                bucket.short.setdefault(pattern, []).append(index)
            else:
                bucket.long.setdefault(pattern.decode("latin-1"), []).append(index)
        self._always = [(needed, tuple(indexes)) for needed, indexes in always.items()]
        module = _load_automaton() if use_automaton else None
        self.uses_automaton = module is not None
        for bucket in self._buckets.values():
            if module is not None and bucket.long:
                automaton = module.Automaton()
                for pattern, indexes in bucket.long.items():
                    automaton.add_word(pattern, len(bucket.by_id))
                    bucket.by_id.append(tuple(indexes))
                automaton.make_automaton()
                bucket.automaton = automaton
        self.rule_count = len(rules)

    @property
    def pattern_count(self) -> int:
        return sum(len(b.long) + len(b.short) for b in self._buckets.values())

    def candidates(self, buffers: Mapping[str, bytes | None]) -> list[int]:
        """Ascending indexes of the rules worth running ``match_payload`` on for these buffers."""
        hits: set[int] = set()
        for (name, transforms), bucket in self._buckets.items():
            raw = buffers.get(name)
            if raw is None:
                continue
            data = (apply_transforms(raw, transforms) if transforms else raw).lower()
            for pattern, indexes in bucket.short.items():
                if pattern in data:
                    hits.update(indexes)
            if not bucket.long:
                continue
            if bucket.automaton is not None:
                by_id = bucket.by_id
                for pid in {pid for _end, pid in bucket.automaton.iter(data.decode("latin-1"))}:
                    hits.update(by_id[pid])
            else:
                text = data.decode("latin-1")
                for pattern, idx in bucket.long.items():
                    if pattern in text:
                        hits.update(idx)
        for needed, indexes in self._always:
            if all(buffers.get(b) is not None for b in needed):
                hits.update(indexes)
        return sorted(hits)


__all__ = ["Prefilter", "fast_pattern", "fast_pattern_content", "pattern_strength"]
