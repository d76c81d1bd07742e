"""Rule files: reading them (every ``*.rules`` under a folder), their logical lines (continued
with a backslash), each rule parsed with its ``path:line``, the ``threshold.config`` beside them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from analysis.rules.classification import Classtype, load_classifications
from analysis.rules.model import Rule, RuleError, RuleSet, RulesPathError, RuleSyntaxError
from analysis.rules.parser import parse_rule
from analysis.rules.variables import Variables


def logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """(first line number, text) of each rule line, joining lines that end with a backslash."""
    pending: list[str] = []
    start = 0
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.rstrip("\r")
        if not pending:
            start = lineno
        if line.endswith("\\"):
            pending.append(line[:-1])
            continue
        pending.append(line)
        yield start, "".join(pending)
        pending = []
    if pending:
        yield start, "".join(pending)


def parse_rules_text(text: str, path: str, variables: Variables, classtypes: Mapping[str, Classtype],
                     ) -> tuple[list[Rule], list[RuleError]]:
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for lineno, line in logical_lines(text):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            rules.append(parse_rule(stripped, variables, classtypes, path=path, line=lineno))
        except RuleSyntaxError as err:
            errors.append(RuleError(path, lineno, _shorten(str(err)), _sid_of(stripped)))
        except Exception as err:  # never crash on a hostile rule; the reason names the bug
            errors.append(RuleError(path, lineno, f"internal error: {type(err).__name__}: {err}", _sid_of(stripped)))
    return rules, errors


def _shorten(reason: str, limit: int = 200) -> str:
    return reason if len(reason) <= limit else reason[:limit] + "..."


_SID = re.compile(r"[;(]\s*sid\s*:\s*(\d+)", re.ASCII)


def _sid_of(text: str) -> int | None:
    m = _SID.search(text)
    return int(m.group(1)) if m else None


def rule_files(paths: Iterable[Path | str]) -> list[Path]:
    """Files as given, and every ``*.rules`` under folders (sorted); raise for a missing path."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*.rules") if q.is_file()))
        elif p.exists():
            out.append(p)
        else:
            raise RulesPathError("no such file or directory", path=str(p))
    return out


def load_rules(paths: Iterable[Path | str], variables: Variables | None = None,
               classtypes: Mapping[str, Classtype] | None = None, *, threshold_configs: bool = True) -> RuleSet:
    """Load every rule under ``paths``; duplicate (gid, sid) after the first is rejected. The
    ``threshold.config`` beside each rules file applies to the rules (``thresholdconfig``)."""
    variables = variables or Variables()
    classtypes = load_classifications() if classtypes is None else classtypes
    rules: list[Rule] = []
    errors: list[RuleError] = []
    seen: dict[tuple[int, int], Rule] = {}
    files = rule_files(paths)
    for path in files:
        try:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as err:
            errors.append(RuleError(str(path), 0, f"cannot read: {err.strerror}"))
            continue
        file_rules, file_errors = parse_rules_text(text, str(path), variables, classtypes)
        for rule in file_rules:
            first = seen.get((rule.gid, rule.sid))
            if first is not None:
                file_errors.append(RuleError(rule.path, rule.line,
                                             f"duplicate sid {rule.sid} (first at {first.path}:{first.line})", rule.sid))
                continue
            seen[(rule.gid, rule.sid)] = rule
            rules.append(rule)
        errors.extend(sorted(file_errors, key=lambda e: e.line))
    if threshold_configs:
        rules = _with_threshold_configs(rules, errors, files, variables)
    return RuleSet(tuple(rules), tuple(errors))


def _with_threshold_configs(rules: list[Rule], errors: list[RuleError], files: list[Path],
                            variables: Variables) -> list[Rule]:
    """The rules with the ``threshold.config`` beside each rules file applied (each file once)."""
    from analysis.rules.thresholdconfig import FILENAME, apply_threshold_config, parse_threshold_config

    entries = []
    for config in dict.fromkeys(f.parent / FILENAME for f in files):
        if not config.is_file():
            continue
        try:
            text = config.read_bytes().decode("utf-8", "surrogateescape")
        except OSError as err:
            errors.append(RuleError(str(config), 0, f"cannot read: {err.strerror}"))
            continue
        found, bad = parse_threshold_config(text, str(config), variables)
        entries += found
        errors.extend(bad)
    return apply_threshold_config(rules, entries) if entries else rules
