"""``threshold.config``: a sensor's thresholds, suppressions and rate filters over its rules.

Suricata's format and meaning (its "Global thresholds" chapter), one entry per line, ``#``
comments, a trailing backslash continues a line::

    threshold gen_id 1, sig_id 2002087, type limit, track by_src, count 1, seconds 60
    event_filter ...                       (the same as threshold)
    suppress gen_id 1, sig_id 2002087
    suppress gen_id 1, sig_id 2002087, track by_src, ip 209.132.180.67
    suppress gen_id 0, sig_id 0, track by_either, ip [10.0.0.0/8,$HOME_NET]
    rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action pass, timeout 30

- ``threshold``/``event_filter`` for one rule replaces the rule's own ``threshold`` and
  ``detection_filter``; with ``sig_id 0`` (every rule of ``gen_id``, or of every gid with
  ``gen_id 0``) it applies to the rules that have none of their own.
- ``suppress`` without an address makes the rule ``noalert`` (its flowbits still act); with
  ``track`` and ``ip``, the alerts whose source (``by_src``), destination (``by_dst``) or either
  (``by_either``) is in ``ip`` are dropped. ``sig_id 0`` as above.
- ``rate_filter``: past ``count`` matches in ``seconds``, the rule's action is ``new_action`` for
  ``timeout`` seconds. Wiretrail is a passive sensor (Suricata's IDS mode): ``pass`` silences the
  alerts meanwhile; ``drop`` and ``reject`` still alert, as in IDS mode.

``load_rules`` reads the ``threshold.config`` of each rules folder it is given, and the one beside
each rules file; a bad line is a ``RuleError`` (path:line: reason) like a bad rule.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from analysis.rules.model import RateFilter, Rule, RuleError, Suppress, Threshold
from analysis.rules.variables import SpecError, Variables

FILENAME = "threshold.config"
_KINDS = ("threshold", "event_filter", "suppress", "rate_filter")
_PAIR = re.compile(r"\s*([a-z_]+)\s+(\[[^\]]*\]|[^,]+?)\s*(?:,|$)")
_TRACKS = {"threshold": ("by_src", "by_dst", "by_rule", "by_both", "by_flow"),
           "rate_filter": ("by_src", "by_dst", "by_rule", "by_both"),
           "suppress": ("by_src", "by_dst", "by_either")}
_KEYS = {"threshold": {"gen_id", "sig_id", "type", "track", "count", "seconds"},
         "rate_filter": {"gen_id", "sig_id", "track", "count", "seconds", "new_action", "timeout"},
         "suppress": {"gen_id", "sig_id", "track", "ip"}}


@dataclass(frozen=True, slots=True)
class Entry:
    """One line: what it sets (a Threshold, RateFilter or Suppress; None: suppress all) on which rules."""

    kind: str  # threshold | suppress | rate_filter
    gid: int  # 0: every gid
    sid: int  # 0: every rule of gid
    value: Threshold | RateFilter | Suppress | None
    path: str
    line: int

    def covers(self, rule: Rule) -> bool:
        return (self.gid == 0 or self.gid == rule.gid) and (self.sid == 0 or self.sid == rule.sid)


class _Bad(ValueError):
    pass


def _number(kv: dict[str, str], key: str, lo: int = 0) -> int:
    text = kv[key]
    if not text.isdigit() or int(text) < lo:
        raise _Bad(f"{key} must be a whole number{' of at least ' + str(lo) if lo else ''}, not {text!r}")
    return int(text)


def _entry(kind: str, rest: str, variables: Variables, path: str, line: int) -> Entry:
    kind = "threshold" if kind == "event_filter" else kind
    kv: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PAIR.match(rest, pos)
        if m is None or m.end() == pos:
            raise _Bad(f"cannot read {rest[pos:]!r} (expected 'name value' pairs separated by commas)")
        if m.group(1) in kv:
            raise _Bad(f"{m.group(1)} given twice")
        kv[m.group(1)] = m.group(2).strip()
        pos = m.end()
    unknown = sorted(kv.keys() - _KEYS[kind])
    if unknown:
        raise _Bad(f"{kind} does not take {', '.join(unknown)}")
    needed = {"gen_id", "sig_id"} if kind == "suppress" else _KEYS[kind]
    missing = sorted(needed - kv.keys())
    if missing:
        raise _Bad(f"{kind} needs {', '.join(missing)}")
    gid, sid = _number(kv, "gen_id"), _number(kv, "sig_id")
    track = kv.get("track")
    if track is not None and track not in _TRACKS[kind]:
        raise _Bad(f"{kind} track must be {', '.join(_TRACKS[kind])}, not {track!r}")
    value: Threshold | RateFilter | Suppress | None
    if kind == "threshold":
        if kv["type"] not in ("limit", "threshold", "both"):
            raise _Bad(f"threshold type must be limit, threshold or both, not {kv['type']!r}")
        value = Threshold(kv["type"], track, _number(kv, "count", 1), _number(kv, "seconds"))
    elif kind == "rate_filter":
        if kv["new_action"] not in ("alert", "drop", "pass", "reject"):
            raise _Bad(f"rate_filter new_action must be alert, drop, pass or reject, not {kv['new_action']!r}")
        value = RateFilter(track, _number(kv, "count", 1), _number(kv, "seconds"), kv["new_action"],
                           _number(kv, "timeout"))
    elif ("track" in kv) != ("ip" in kv):
        raise _Bad("suppress takes track and ip together, or neither")
    elif "ip" in kv:
        try:
            value = Suppress(track, variables.address(kv["ip"]))
        except SpecError as err:
            raise _Bad(f"suppress ip: {err}") from None
    else:
        value = None
    return Entry(kind, gid, sid, value, path, line)


def parse_threshold_config(text: str, path: str, variables: Variables | None = None
                           ) -> tuple[list[Entry], list[RuleError]]:
    """The entries of a threshold.config's text, and an error for each line that is not one."""
    variables = variables or Variables()
    entries: list[Entry] = []
    errors: list[RuleError] = []
    pending, first = "", 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            first = lineno
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        kind, _, rest = line.partition(" ")
        try:
            if kind not in _KINDS:
                raise _Bad(f"unknown entry {kind!r} (expected threshold, event_filter, suppress or rate_filter)")
            entries.append(_entry(kind, rest, variables, path, first))
        except _Bad as err:
            sid = re.search(r"sig_id\s+(\d+)", line)
            errors.append(RuleError(path, first, f"threshold.config: {err}", int(sid.group(1)) if sid else None))
    if pending:
        errors.append(RuleError(path, first, "threshold.config: the file ends inside a continued line"))
    return entries, errors


def apply_threshold_config(rules: Sequence[Rule], entries: Iterable[Entry]) -> list[Rule]:
    """The rules with the entries applied (module doc), in the same order."""
    entries = list(entries)
    if not entries:
        return list(rules)
    out = []
    for rule in rules:
        changes: dict = {}
        own = rule.threshold is not None or rule.detection_filter is not None
        for e in entries:
            if not e.covers(rule):
                continue
            if e.kind == "threshold":
                if e.sid != 0:  # one rule's: replaces whatever it had
                    changes.update(threshold=e.value, detection_filter=None)
                elif not own and "threshold" not in changes:  # global: only where the rule has none
                    changes["threshold"] = e.value
            elif e.kind == "rate_filter":
                changes["rate_filter"] = e.value
            elif e.value is None:
                changes["noalert"] = True
            else:
                changes["suppress"] = (*changes.get("suppress", rule.suppress), e.value)
        out.append(dataclasses.replace(rule, **changes) if changes else rule)
    return out


__all__ = ["FILENAME", "Entry", "apply_threshold_config", "parse_threshold_config"]
