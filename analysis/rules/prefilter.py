"""The multi-pattern prefilter: which rules are worth trying on a set of buffers.

Each rule has at most one *fast pattern*, chosen as Suricata does (``fast_pattern`` when the rule
says so, with ``fast_pattern_chop``; else among the contents of the highest-priority buffer the
longest, then the most varied by Suricata's pattern strength, then the first; negated contents only
when the rule has no other). One Hyperscan database per buffer (name and transforms) holds every
fast pattern, each keeping its rule's case (``nocase`` patterns caseless): a rule is a candidate when
its fast pattern occurs in its buffer. Rules without a fast pattern, or whose fast pattern is
negated, are candidates whenever all their buffers are present. Without Hyperscan (a platform with
no wheel) each pattern is one substring search: the same candidates, slower.

Runs of zero bytes (padding, sparse files, zero-filled test traffic) are shortened before a scan:
a literal matcher confirms its zero-laden patterns at every byte of such a run (Hyperscan took
13 us for 625 zero bytes against ET Open's payload patterns, 1 us for 625 random ones). A run
longer than every run of zeros in the bucket's patterns is cut to that length plus one, which
keeps exactly the patterns that occur: a pattern's inner run of zeros must meet a run of the
same length, a run at its start or end one at least as long, and both stay as they were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from analysis.rules.model import BASE64_DATA, PAYLOAD, Content, Rule
from analysis.rules.transforms import apply_transforms

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
    # base64_data's contents are not in the multi-pattern matcher (as in Suricata): no such buffer
    contents = [m for m in rule.matches if isinstance(m, Content) and m.buffer != BASE64_DATA]
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


def _load_hyperscan():
    try:
        import hyperscan  # noqa: PLC0415 - imported only where used; absent on some platforms
    except ImportError:  # pragma: no cover - declared for x86-64 and ARM64; the fallback is for the rest
        return None
    return hyperscan


class _Bucket:
    """The fast patterns of one buffer (name and transforms)."""

    __slots__ = ("by_id", "database", "exact", "folded", "hits", "zeros", "zero_runs")

    def __init__(self) -> None:
        self.exact: dict[bytes, list[int]] = {}  # case-sensitive pattern -> rule indexes
        self.folded: dict[bytes, list[int]] = {}  # nocase pattern, lowercased -> rule indexes
        self.by_id: list[list[int]] = []  # database pattern id -> rule indexes
        self.database = None
        self.hits: list[int] = []  # pattern ids the last scan reported
        self.zeros = b""  # a run of zeros longer than any in the patterns (set when they are all in)
        self.zero_runs = None  # the runs at least that long, cut to it before a scan

    def seal(self) -> None:
        """Every pattern is in: how long a run of zeros in scanned data may stay."""
        longest = max((len(run) for table in (self.exact, self.folded) for p in table
                       for run in re.findall(rb"\x00+", p)), default=0)
        self.zeros = b"\x00" * (longest + 1)
        self.zero_runs = re.compile(rb"\x00{%d,}" % (longest + 1))


class Prefilter:
    """Pick, for a set of buffers, the rules whose fast pattern occurs (indexes into ``rules``).

    Each fast pattern keeps its rule's case: a ``nocase`` pattern matches in any case, another only
    as written (``match_payload`` would reject the rest anyway). With Hyperscan every buffer is one
    scan that reports each pattern once (``HS_FLAG_SINGLEMATCH``) however often it occurs; without
    it each pattern is one substring search.
    """

    def __init__(self, rules: Sequence[Rule], *, use_automaton: bool = True) -> None:
        self._buckets: dict[tuple[str, tuple[str, ...]], _Bucket] = {}
        # rules always tried, grouped by the buffers they need: (buffers, indexes)
        always: dict[frozenset[str], list[int]] = {}
        for index, rule in enumerate(rules):
            c = fast_pattern_content(rule)
            if c is None or c.negated:  # nothing to look for
                always.setdefault(rule.buffers, []).append(index)
                continue
            pattern = _chopped(c)
            if not pattern:
                always.setdefault(rule.buffers, []).append(index)
                continue
            bucket = self._buckets.setdefault((c.buffer, tuple(c.transforms)), _Bucket())
            if c.nocase:
                bucket.folded.setdefault(pattern.lower(), []).append(index)
            else:
                bucket.exact.setdefault(pattern, []).append(index)
        self._always = [(needed, tuple(indexes)) for needed, indexes in always.items()]
        for bucket in self._buckets.values():
            bucket.seal()
        hs = _load_hyperscan() if use_automaton else None
        self.uses_automaton = hs is not None
        if hs is not None:
            for bucket in self._buckets.values():
                self._compile(hs, bucket)
        self.rule_count = len(rules)

    @staticmethod
    def _compile(hs, bucket: _Bucket) -> None:
        patterns, flags = [], []
        for table, flag in ((bucket.exact, 0), (bucket.folded, hs.HS_FLAG_CASELESS)):
            for pattern, indexes in table.items():
                patterns.append(_escaped(pattern))
                flags.append(flag | hs.HS_FLAG_SINGLEMATCH)
                bucket.by_id.append(indexes)
        database = hs.Database(mode=hs.HS_MODE_BLOCK)
        database.compile(expressions=patterns, ids=list(range(len(patterns))), elements=len(patterns),
                         flags=flags)
        bucket.database = database

    @property
    def pattern_count(self) -> int:
        return sum(len(b.exact) + len(b.folded) for b in self._buckets.values())

    def candidates(self, buffers: Mapping[str, bytes | None]) -> list[int]:
        """Ascending indexes of the rules worth running ``match_payload`` on for these buffers."""
        hits: set[int] = set()
        for (name, transforms), bucket in self._buckets.items():
            raw = buffers.get(name)
            if raw is None:
                continue
            data = apply_transforms(raw, transforms) if transforms else raw
            if bucket.zeros in data:
                data = bucket.zero_runs.sub(bucket.zeros, data)
            if bucket.database is not None:
                if data:
                    found = bucket.hits
                    bucket.database.scan(data, match_event_handler=_collect, context=found)
                    by_id = bucket.by_id
                    for pid in found:
                        hits.update(by_id[pid])
                    found.clear()
                continue
            for pattern, indexes in bucket.exact.items():
                if pattern in data:
                    hits.update(indexes)
            if bucket.folded:
                lowered = data.lower()
                for pattern, indexes in bucket.folded.items():
                    if pattern in lowered:
                        hits.update(indexes)
        for needed, indexes in self._always:
            if all(buffers.get(b) is not None for b in needed):
                hits.update(indexes)
        return sorted(hits)


_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def _escaped(pattern: bytes) -> bytes:
    """A literal as a Hyperscan expression: letters and digits as they are, every other byte as
    ``\\xHH`` (expressions are C strings, so a NUL byte cannot travel as itself)."""
    return b"".join(bytes((ch,)) if ch in _PLAIN else b"\\x%02x" % ch for ch in pattern)


def _collect(pattern_id: int, _start: int, _end: int, _flags: int, found: list[int]) -> None:
    found.append(pattern_id)


__all__ = ["Prefilter", "fast_pattern", "fast_pattern_content", "pattern_strength"]
