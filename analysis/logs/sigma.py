"""Sigma rules loaded and converted with pySigma: its SQLite backend (Zircolite output, which also
carries the correlation plans) turns each rule into SQL over one table whose columns carry Sigma's
field names (``detect`` builds it from the stored events).

Log sources are matched by processing pipelines, so a rule only sees the events its ``logsource``
names:

- ``product: windows`` categories through pySigma's Sysmon pipeline (``process_creation`` is
  Sysmon event 1 in ``Microsoft-Windows-Sysmon/Operational``, ...), and, for the categories
  Windows' own audit log also records (``process_creation`` as Security 4688, registry as 4657),
  a second conversion through pySigma's ``windows-audit`` pipeline with its field renames
  (``Image`` -> ``NewProcessName``); either one matching fires the rule.
- ``product: windows`` services through pySigma's ``windows-logsources`` pipeline (``Channel``).
- ``product: linux`` (``service: sshd|sudo|su|auth``...) and ``category: webserver`` through our
  own pipeline: conditions on the pseudo-fields ``wt_source`` (syslog, journal, web, evtx) and
  ``wt_kind`` (sshd, sudo, su, web, windows, ...). A rule for any other log source (proxy, cloud,
  ...) gets a condition nothing meets: it loads, and matches none of the logs we read.

Keyword (full-text) detections, which the SQLite backend refuses, are matched against the raw
line (``_raw``; an evtx record's fields as JSON text)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Categories Windows' own Security log records (pySigma-pipeline-windows' audit mapping).
AUDIT_CATEGORIES = frozenset({"process_creation", "registry_event", "registry_set", "registry_add"})
LINUX_SOURCES = ["syslog", "journal"]
LINUX_SERVICES = {"sshd": "sshd", "sudo": "sudo", "su": "su", "cron": "cron", "systemd-logind": "systemd-logind",
                  "useradd": "useradd", "passwd": "passwd"}
_RAW = re.compile(r"(?<!\w)_raw(?!\w)")  # the raw line's column in a rule's SQL


# Rows as an OR of ANDs of conditions on pseudo-fields: ((("wt_kind", ("sshd",)), ("wt_source",
# ("syslog", "journal"))), ...) is (wt_kind = 'sshd' AND wt_source IN ('syslog', 'journal')) OR ...
Rows = tuple[tuple[tuple[str, tuple[str, ...]], ...], ...]


@dataclass(frozen=True, slots=True)
class Query:
    """One converted form of a rule: plain SQL returning matching rows of ``logs``, or a
    correlation plan for pySigma's SQLite runtime."""

    sql: str | None = None
    plan: dict | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    path: str
    id: str
    title: str
    level: str
    tags: tuple[str, ...]
    queries: tuple[Query, ...]
    fields: frozenset[str]
    correlation: bool = False
    # For a correlation: the OR of the conditions of the rules it counts (SQL over ``logs``), so
    # its plan runs over the rows that can take part rather than over every event.
    prefilter: str | None = None
    # For a correlation with ``group-by`` that can only fire in a group holding enough rows: the
    # group's fields and, per condition (SQL over ``logs``), how many of the group's rows must meet
    # it within how many seconds (None: anywhere in the group) (``_needs``). A group short of them
    # cannot fire, so its rows are left out of the plan.
    groups: tuple[str, ...] = ()
    needs: tuple[tuple[str, int, int | None], ...] = ()
    # For a detection rule of a Linux service or of web servers: the ``wt_kind`` every row it
    # matches has (our pipeline adds that condition), so rules of one kind can share a scan.
    scope: str | None = None
    # The rows the rule can match (``Rows``): our pipeline ANDs a ``wt_source``/``wt_kind``
    # condition to every rule of a log source; a correlation's are those of the rules it counts.
    # None: not known (any row). ``detect`` reads a field from the events only on such rows.
    rows: Rows | None = None

    @property
    def signature_id(self) -> int:
        """A stable number for the alerts table: 31 bits of the rule id's BLAKE2b hash, above the
        range of hand-written signatures (2,000,000,000 + n)."""
        digest = hashlib.blake2b((self.id or self.title).encode(), digest_size=8).digest()
        return 2_000_000_000 + int.from_bytes(digest, "big") % 100_000_000

    @property
    def severity(self) -> int:
        return {"critical": 1, "high": 1, "medium": 2, "low": 3, "informational": 3}.get(self.level, 3)


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    rejected: tuple[tuple[str, str], ...]  # (path, reason)

    @property
    def fields(self) -> frozenset[str]:
        out: set[str] = set()
        for r in self.rules:
            out |= r.fields
        return frozenset(out)

    @property
    def field_rows(self) -> dict[str, Rows | None]:
        """Field (lower case) -> the rows on which some rule naming it can match (None: any row)."""
        out: dict[str, Rows | None] = {}
        for r in self.rules:
            for name in r.fields:
                key = name.lower()
                if r.rows is None or (key in out and out[key] is None):
                    out[key] = None
                else:
                    out[key] = tuple(dict.fromkeys((out.get(key) or ()) + r.rows))
        return out


def rule_files(paths: Iterable[str]) -> Iterator[str]:
    """Every ``*.yml``/``*.yaml`` under the paths (a file is taken as it is), sorted per folder."""
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    if name.endswith((".yml", ".yaml")):
                        yield os.path.join(root, name)
        else:
            yield path


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:300]


def _linux_pipeline():
    from sigma.processing.conditions import LogsourceCondition
    from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
    from sigma.processing.transformations import AddConditionTransformation

    items = []
    for service, kind in LINUX_SERVICES.items():
        items.append(ProcessingItem(identifier=f"wt_linux_{service}",
                                    transformation=AddConditionTransformation({"wt_kind": kind}),
                                    rule_conditions=[LogsourceCondition(product="linux", service=service)]))
    items.append(ProcessingItem(identifier="wt_linux", transformation=AddConditionTransformation(
        {"wt_source": LINUX_SOURCES}), rule_conditions=[LogsourceCondition(product="linux")]))
    items.append(ProcessingItem(identifier="wt_web", transformation=AddConditionTransformation(
        {"wt_kind": "web"}), rule_conditions=[LogsourceCondition(category="webserver")]))
    items.append(ProcessingItem(identifier="wt_windows", transformation=AddConditionTransformation(
        {"wt_source": "evtx"}), rule_conditions=[LogsourceCondition(product="windows")]))
    # Any other log source (proxy, cloud, zeek, ...) is not read by `logs ingest`: such a rule loads
    # but matches nothing, rather than matching look-alike fields of another log.
    items.append(ProcessingItem(
        identifier="wt_unread", transformation=AddConditionTransformation({"wt_source": "unread"}),
        rule_conditions=[LogsourceCondition(product="windows"), LogsourceCondition(product="linux"),
                         LogsourceCondition(category="webserver")],
        rule_condition_linking=any, rule_condition_negation=True))
    return ProcessingPipeline(name="Wiretrail log sources", priority=20, items=items)


def _backend_class():
    from sigma.backends.sqlite import sqliteBackend
    from sigma.conditions import ConditionValueExpression
    from sigma.types import SigmaString, SpecialChars

    class Backend(sqliteBackend):
        """The SQLite backend, with keyword detections matched as substrings of the raw line."""

        def convert_condition_val_str(self, cond: ConditionValueExpression, state):
            value = cond.value  # a keyword matches anywhere in the line, unless it says where
            if not value.startswith(SpecialChars.WILDCARD_MULTI):
                value = SigmaString("*") + value
            if not value.endswith(SpecialChars.WILDCARD_MULTI):
                value = value + SigmaString("*")
            return f"_raw LIKE {self.convert_value_str(value, state)} ESCAPE '\\'"

        def convert_condition_val_num(self, cond: ConditionValueExpression, state):
            return f"_raw LIKE '%{cond.value}%'"

    return Backend


def backends() -> tuple[Any, Any]:
    """(primary, audit): the backend for every rule (Sysmon for Windows categories) and the one
    for the Windows audit-log variant."""
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_audit_pipeline, windows_logsource_pipeline

    cls = _backend_class()
    options = {"timestamp_field": "timestamp", "timestamp_format": "unix", "collect_errors": False}
    primary = cls(processing_pipeline=_linux_pipeline() + sysmon_pipeline() + windows_logsource_pipeline(),
                  **options)
    audit = cls(processing_pipeline=_linux_pipeline() + windows_audit_pipeline() + windows_logsource_pipeline(),
                **options)
    return primary, audit


def _tags(rule) -> tuple[str, ...]:
    return tuple(f"{t.namespace}.{t.name}" for t in (rule.tags or ()))


def _converted(backend, rule, correlation: bool) -> list[Query]:
    if correlation:
        out = backend.convert_correlation_rule(rule, "zircolite")
    else:
        out = backend.convert_rule(rule, "zircolite")
    queries = []
    for item in out:
        if isinstance(item, dict) and item.get("correlation_plan"):
            queries.append(Query(plan=item["correlation_plan"]))
        elif isinstance(item, dict):
            queries.extend(Query(sql=s) for s in item.get("rule", []))
        elif isinstance(item, str):
            queries.append(Query(sql=item))
    return queries


def _fields_of(queries: list[Query], backend, rule, correlation: bool) -> set[str]:
    if correlation:
        out: set[str] = set()
        for q in queries:
            for fields in (q.plan or {}).get("required_fields", {}).values():
                out.update(fields)
        return out
    return set(backend.required_fields(rule))


def load_rules(paths: Iterable[str]) -> RuleSet:
    """Every rule under the paths, converted; a file or rule that cannot be read or converted is
    in ``rejected`` as (path, reason) and the others load."""
    from sigma.collection import SigmaCollection
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    rejected: list[tuple[str, str]] = []
    loaded: list[tuple[str, Any]] = []
    for path in rule_files(paths):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            collection = SigmaCollection.from_yaml(text, collect_errors=True)
        except (OSError, UnicodeDecodeError) as err:
            rejected.append((path, _first_line(err)))
            continue
        except Exception as err:  # pySigma raises its own SigmaError and yaml's errors
            rejected.append((path, _first_line(err)))
            continue
        if not collection.rules:
            errors = getattr(collection, "errors", None) or []
            rejected.append((path, _first_line(errors[0]) if errors else "no Sigma rule in this file"))
            continue
        for rule in collection.rules:
            if rule.errors:
                rejected.append((path, _first_line(rule.errors[0])))
            elif not isinstance(rule, SigmaRule | SigmaCorrelationRule):
                rejected.append((path, "not a detection or correlation rule"))
            else:
                loaded.append((path, rule))
    if not loaded:
        return RuleSet((), tuple(rejected))
    collection = SigmaCollection([r for _, r in loaded])
    try:
        collection.resolve_rule_references()
    except Exception as err:
        for path, rule in loaded:
            if isinstance(rule, SigmaCorrelationRule):
                rejected.append((path, _first_line(err)))
        loaded = [(p, r) for p, r in loaded if not isinstance(r, SigmaCorrelationRule)]
    primary, audit = backends()
    compiled: list[CompiledRule] = []
    predicates: dict[int, list[str]] = {}  # id(rule) -> its conditions as SQL, for prefilters
    rows_of: dict[int, Rows | None] = {}  # id(rule) -> the rows it can match, for correlations
    order = sorted(loaded, key=lambda pr: isinstance(pr[1], SigmaCorrelationRule))  # bases first
    for path, rule in order:
        correlation = isinstance(rule, SigmaCorrelationRule)
        if getattr(rule, "errors", None):
            rejected.append((path, _first_line(rule.errors[0])))
            continue
        try:
            queries = _converted(primary, rule, correlation)
            fields = _fields_of(queries, primary, rule, correlation)
        except Exception as err:
            rejected.append((path, _first_line(err)))
            continue
        prefilter = None
        groups: tuple[str, ...] = ()
        needs: tuple[tuple[str, int, int | None], ...] = ()
        if correlation:
            rows = _correlation_rows(rule, rows_of)
            prefilter = _prefilter(rule, predicates)
            need = _needs(rule, predicates) if prefilter else None
            if need is not None:
                groups, needs = need
        else:
            result = rule.get_conversion_result() if getattr(rule, "_backreferences", None) else []
            predicates[id(rule)] = [q for q in result if isinstance(q, str)]
            rows = rows_of[id(rule)] = _rows(rule, [q.sql or "" for q in queries] + predicates[id(rule)])
        logsource = getattr(rule, "logsource", None)
        if (not correlation and logsource is not None and logsource.product == "windows"
                and logsource.category in AUDIT_CATEGORIES):
            try:
                more = _converted(audit, rule, correlation)
                fields |= _fields_of(more, audit, rule, correlation)
                queries += more
                rows = rows_of[id(rule)] = _rows(rule, [q.sql or "" for q in queries] + predicates[id(rule)])
            except Exception:  # a field with no counterpart in the audit log: the Sysmon form stays
                pass
        if not queries and getattr(rule, "_output", True):
            rejected.append((path, "the rule converted to no query"))
            continue
        if not queries:
            continue  # a rule only referenced by a correlation (generate: false)
        if any(_RAW.search((q.sql or "") + str(q.plan or "")) for q in queries) or _RAW.search(prefilter or ""):
            fields.add("_raw")  # a keyword detection: ``detect`` lays out the raw lines only then
        scope = None if correlation else _scope(logsource, queries)
        level = rule.level.name.lower() if getattr(rule, "level", None) else ""
        compiled.append(CompiledRule(path=path, id=str(rule.id) if rule.id else "", title=rule.title or "",
                                     level=level, tags=_tags(rule), queries=tuple(queries),
                                     fields=frozenset(fields), correlation=correlation, prefilter=prefilter,
                                     groups=groups, needs=needs, scope=scope, rows=rows))
    return RuleSet(tuple(compiled), tuple(rejected))


def _scope(logsource, queries: list[Query]) -> str | None:
    """The ``wt_kind`` our pipeline requires of the rule's rows, when its one query says so."""
    if logsource is None or len(queries) != 1 or queries[0].sql is None:
        return None
    kind = None
    if logsource.product == "linux" and logsource.service in LINUX_SERVICES:
        kind = LINUX_SERVICES[logsource.service]
    elif logsource.category == "webserver":
        kind = "web"
    return kind if kind and f"wt_kind='{kind}'" in queries[0].sql else None


def _rows(rule, sqls: list[str]) -> Rows | None:
    """The rows our pipeline (``_linux_pipeline``) lets a detection rule match: the conditions its
    items add to a rule of the rule's log source, when every form of the rule (``sqls``) carries
    them; else None."""
    from sigma.processing.conditions import LogsourceCondition

    def of(**logsource) -> bool:
        return LogsourceCondition(**logsource).match(rule)

    conds: list[tuple[str, tuple[str, ...]]] = []
    conds += [("wt_kind", (kind,)) for service, kind in LINUX_SERVICES.items() if of(product="linux", service=service)]
    conds += [("wt_source", tuple(LINUX_SOURCES))] if of(product="linux") else []
    conds += [("wt_kind", ("web",))] if of(category="webserver") else []
    conds += [("wt_source", ("evtx",))] if of(product="windows") else []
    conds = conds or [("wt_source", ("unread",))]
    texts = [" OR ".join(f"{name}='{v}'" for v in values) for name, values in conds]
    texts = [f"({t})" if len(values) > 1 else t for t, (_n, values) in zip(texts, conds)]
    if not sqls or not all(t in sql for sql in sqls for t in texts):
        return None
    return (tuple(conds),)


def _correlation_rows(rule, rows_of: dict[int, Rows | None]) -> Rows | None:
    """The rows of every rule a correlation counts, through the correlations it counts."""
    from sigma.correlations import SigmaCorrelationRule

    out: Rows = ()
    for ref in getattr(rule, "rules", None) or ():
        target = getattr(ref, "rule", None)
        inner = (_correlation_rows(target, rows_of) if isinstance(target, SigmaCorrelationRule)
                 else rows_of.get(id(target)))
        if inner is None:
            return None
        out += inner
    return out or None


def _prefilter(rule, predicates: dict[int, list[str]]) -> str | None:
    """The OR of the conditions of every detection rule a correlation counts, through the
    correlations it counts; None when one of them is unknown."""
    from sigma.correlations import SigmaCorrelationRule

    out: list[str] = []
    for ref in getattr(rule, "rules", None) or ():
        target = getattr(ref, "rule", None)
        if target is None:
            return None
        if isinstance(target, SigmaCorrelationRule):
            inner = _prefilter(target, predicates)
            if inner is None:
                return None
            out.append(inner)
        elif predicates.get(id(target)):
            out.extend(f"({p})" for p in predicates[id(target)])
        else:
            return None
    return " OR ".join(out) if out else None


def _needs(rule, predicates: dict[int, list[str]]) -> tuple[tuple[str, ...], tuple[tuple[str, int, int | None], ...]] | None:
    """What a group must hold for the correlation to fire in it, as (group-by fields, ((condition,
    rows, seconds), ...)), or None when that cannot be said simply (no group-by, field aliases, an
    extended or upper-bound condition, ...). A window of a group holds only rows of that group, so:
    ``event_count`` and ``value_count`` over detection rules with ``gte: n`` (``gt: n``) need n
    (n + 1) rows of the group meeting the rules' conditions within the timespan; ``temporal`` and
    ``temporal_ordered`` need every rule they name present in the window: a row of each detection
    rule (anywhere in the group), and what each correlation they name needs (grouped by the same
    fields)."""
    from sigma.correlations import (
        SigmaCorrelationCondition,
        SigmaCorrelationConditionOperator,
        SigmaCorrelationRule,
        SigmaCorrelationType,
    )

    groups = tuple(g.lower() for g in (getattr(rule, "group_by", None) or ()))
    aliases = getattr(getattr(rule, "aliases", None), "aliases", None)
    cond = getattr(rule, "condition", None)
    if not groups or aliases or type(cond) is not SigmaCorrelationCondition:
        return None
    targets = [getattr(ref, "rule", None) for ref in getattr(rule, "rules", None) or ()]
    if not targets or any(t is None for t in targets):
        return None
    if rule.type in (SigmaCorrelationType.EVENT_COUNT, SigmaCorrelationType.VALUE_COUNT):
        if any(isinstance(t, SigmaCorrelationRule) or not predicates.get(id(t)) for t in targets):
            return None
        if cond.op == SigmaCorrelationConditionOperator.GTE:
            n = int(cond.count)
        elif cond.op == SigmaCorrelationConditionOperator.GT:
            n = int(cond.count) + 1
        else:
            return None
        if n < 2:
            return None
        condition = " OR ".join(f"({p})" for t in targets for p in predicates[id(t)])
        span = getattr(getattr(rule, "timespan", None), "seconds", None)
        return groups, ((condition, n, int(span) if isinstance(span, int) and span > 0 else None),)
    if rule.type in (SigmaCorrelationType.TEMPORAL, SigmaCorrelationType.TEMPORAL_ORDERED):
        out: list[tuple[str, int, int | None]] = []
        for t in targets:
            if isinstance(t, SigmaCorrelationRule):
                inner = _needs(t, predicates)
                if inner is None or inner[0] != groups:
                    return None
                out.extend(inner[1])
            elif predicates.get(id(t)):
                out.append((" OR ".join(f"({p})" for p in predicates[id(t)]), 1, None))
            else:
                return None
        return groups, tuple(out)
    return None
