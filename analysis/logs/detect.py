"""Sigma rules run over the stored log events.

The stored events are laid out once per run (``layout``) in an in-memory SQLite table ``logs`` with one
``TEXT COLLATE NOCASE`` column per field any loaded rule names (as Zircolite builds its table, which
is what pySigma's SQLite backend writes its SQL for: Sigma compares strings case-insensitively),
filled with SQLite's ``json_extract`` from each event's fields, plus the pseudo-fields of
``sigma`` (``wt_source``, ``wt_kind``), the common columns (``host``, ``account``, ``action``,
``outcome``, ``src_ip``, ``src_port``), ``timestamp`` (epoch seconds, for correlations) and,
when a keyword rule is loaded, ``_raw``. A field is read from the events' JSON only on the rows of
the log sources of the rules naming it. With a SQLite store the events are read in place
(``ATTACH``), with PostgreSQL copied through Python. The table is indexed on ``wt_kind`` and ``wt_source``.

Each rule's SQL then runs there: the detection rules of one Linux service or of web servers
(``scope``) share one scan of that kind's rows; a ``REGEXP`` condition is answered from a table of
the field's values that match (``Regexps``); a correlation rule's plan runs through
pySigma-backend-sqlite's runtime over the rows of the groups that can fire (``needs``; found
in one pass for the correlations grouped by the same fields: ``needs.NeedRows``)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from analysis.alerts import Alert
from analysis.logs import workers
from analysis.logs.layout import EVENT_ID, build_halves, build_table, connect, regexp, stage
from analysis.logs.needs import NeedRows
from analysis.logs.sigma import CompiledRule, RuleSet
from analysis.logs.workers import RULE_ERRORS, SHARED_WHERE, Results, Unit
from recorder.core.store import Store


@dataclass(frozen=True, slots=True)
class Match:
    """A rule firing: on one event (``event_ids`` of one), or a correlation on its group."""

    rule: CompiledRule
    event_ids: tuple[int, ...]
    group: tuple[tuple[str, str], ...] = ()


# A field's REGEXP condition (the backend writes ``field REGEXP 'pattern'``) or a string or quoted
# name, which is skipped whole so that no REGEXP inside a literal is taken for one.
_SQL_REGEXP = re.compile(r"(?P<field>`(?:[^`]|``)+`|\b[A-Za-z_][A-Za-z0-9_]*) REGEXP '(?P<rx>(?:[^']|'')*)'"
                         r"|'(?:[^']|'')*'|`(?:[^`]|``)*`")


class Regexps:
    """REGEXP conditions answered by table lookups: for each (field, pattern) the distinct values of
    the field in ``logs`` are matched once in Python (as ``regexp`` would match them) and those that
    match go into a temporary table; the condition becomes a lookup in it. A rule's SQL then runs in
    SQLite alone instead of calling Python on every row."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.tables: dict[tuple[str, str], str] = {}
        self.values: dict[str, list[str]] = {}  # field -> its distinct values

    def _table(self, field: str, pattern: str) -> str:
        key = (field, pattern)
        if key not in self.tables:
            name = f"temp.wt_rx{len(self.tables)}"
            self.conn.execute(f"CREATE TABLE {name} (v TEXT PRIMARY KEY) WITHOUT ROWID")
            if field not in self.values:
                self.values[field] = [v for (v,) in self.conn.execute(
                    f"SELECT DISTINCT CAST({field} AS TEXT) COLLATE BINARY FROM logs WHERE {field} IS NOT NULL")]
            self.conn.executemany(f"INSERT INTO {name} VALUES (?)",
                                  ((v,) for v in self.values[field] if regexp(pattern, v)))
            self.tables[key] = name
        return self.tables[key]

    def rewrite(self, sql: str) -> str:
        def one(m: re.Match) -> str:
            if m.group("rx") is None:
                return m.group(0)
            table = self._table(m.group("field"), m.group("rx").replace("''", "'"))
            if self.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is None:
                return "0"  # no value of the field matches: neither can a row
            return f"COALESCE(CAST({m.group('field')} AS TEXT) COLLATE BINARY IN (SELECT v FROM {table}), 0)"
        return _SQL_REGEXP.sub(one, sql) if " REGEXP '" in sql else sql


def _run_rule(conn: sqlite3.Connection, rule: CompiledRule, columns: str = "",
              regexps: Regexps | None = None, need: NeedRows | None = None) -> Iterator[Match]:
    if rule.correlation:
        yield from _run_correlation(conn, rule, columns, need)
        return
    seen: set[int] = set()
    for q in rule.queries:
        if q.sql is None:
            continue
        sql = q.sql.replace("SELECT * FROM logs", f"SELECT {EVENT_ID} FROM logs", 1)
        if regexps is not None:
            sql = regexps.rewrite(sql)
        for (eid,) in conn.execute(sql):
            if eid not in seen:
                seen.add(eid)
                yield Match(rule, (eid,))


def _run_correlation(conn: sqlite3.Connection, rule: CompiledRule, columns: str,
                     need: NeedRows | None = None) -> Iterator[Match]:
    """The rule's plan through pySigma's runtime; with a prefilter, over a temporary ``logs``
    (which SQLite finds before the main one) holding only the rows the counted rules match, and
    with ``need`` (``NeedRows`` holding the rule's rows) only those of the groups that can fire:
    none (the common case) means nothing to run."""
    from sigma.backends.sqlite.runtime import execute_plan

    narrowed = bool(rule.prefilter and columns)
    if narrowed:
        where = f"({rule.prefilter})"
        if need is not None:
            keys = need.can_fire(rule)
            if not keys:
                return
            where = f"{EVENT_ID} IN ({need.rows(rule, keys)})"
        conn.execute(f"CREATE TEMP TABLE logs ({columns})")
        conn.execute(f"INSERT INTO temp.logs SELECT * FROM main.logs WHERE {where}")
        conn.execute("DROP TABLE IF EXISTS temp.wt_groups")
    try:
        for q in rule.queries:
            if q.plan is None:
                continue
            rows, _diag = execute_plan(conn, q.plan, include_events=False)
            for row in rows:
                ids = tuple(sorted(int(i.split(":", 1)[1]) for i in row.get("event_ids", [])))
                keys = row.get("group_keys") or {}
                group = tuple(sorted((str(k), str(v)) for k, v in keys.items())) if isinstance(keys, dict) else ()
                yield Match(rule, ids, group)
    finally:
        if narrowed:
            conn.execute("DROP TABLE temp.logs")


def _need_rows(conn: sqlite3.Connection, rules: tuple[CompiledRule, ...]) -> NeedRows | None:
    """``NeedRows`` for correlations with ``needs`` grouped by fields of ``logs`` (None otherwise,
    or when the table cannot be made: each rule then runs over its prefilter's rows)."""
    names = {n.lower() for n in _column_names(conn)}
    if not rules[0].needs or not all(g in names and g != EVENT_ID for g in rules[0].groups):
        return None
    try:
        return NeedRows(conn, rules)
    except sqlite3.Error:
        return None


def _column_names(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA main.table_info(logs)")]


def _run_unit(conn: sqlite3.Connection, unit: Unit, columns: str, regexps: Regexps) -> Results:
    """The unit's rules on ``conn``. A shared scan that fails leaves its rules to run one by one."""
    if unit.scope is not None:
        try:
            conds = [regexps.rewrite((r.queries[0].sql or "")[len(SHARED_WHERE):]) for r in unit.rules]
            flags = ", ".join(f"CASE WHEN ({c}) THEN 1 ELSE 0 END" for c in conds)
            sql = (f"SELECT {EVENT_ID}, {flags} FROM logs WHERE wt_kind = ? AND ("
                   + " OR ".join(f"({c})" for c in conds) + ")")
            hits: list[list[Match]] = [[] for _ in unit.rules]
            for row in conn.execute(sql, (unit.scope,)):
                for j, flag in enumerate(row[1:]):
                    if flag:
                        hits[j].append(Match(unit.rules[j], (row[0],)))
            return {id(r): (h, None) for r, h in zip(unit.rules, hits)}
        except sqlite3.Error:
            pass
    out: Results = {}
    # only a correlation narrowed by its prefilter uses the rows it counts (_run_correlation)
    narrowed = bool(columns and unit.rules[0].correlation and unit.rules[0].prefilter)
    shared = _need_rows(conn, unit.rules) if narrowed else None
    try:
        for rule in unit.rules:
            found: list = []
            alone = narrowed and shared is None and len(unit.rules) > 1  # the shared table failed
            need = _need_rows(conn, (rule,)) if alone else shared
            try:
                found.extend(_run_rule(conn, rule, columns, regexps, need))
                out[id(rule)] = (found, None)
            except RULE_ERRORS as err:
                out[id(rule)] = (found, f"{rule.title}: {err}")
            finally:
                if need is not None and need is not shared:
                    need.close()
    finally:
        if shared is not None:
            shared.close()
    return out


def merge_overlapping(matches: list[Match]) -> list[Match]:
    """A correlation fires once per window that meets its condition, so a run of twelve failures
    against ``gte: 10`` yields three overlapping windows: those of one rule and group that share
    events are merged into one match (the union of their events)."""
    out: list[Match] = []
    groups: dict[tuple, list[Match]] = {}
    for m in matches:
        if not m.rule.correlation:
            out.append(m)
        else:
            groups.setdefault((m.rule.id, m.rule.title, m.group), []).append(m)
    for found in groups.values():
        found.sort(key=lambda m: m.event_ids)
        current: Match | None = None
        for m in found:
            if current is not None and set(current.event_ids) & set(m.event_ids):
                current = Match(current.rule, tuple(sorted(set(current.event_ids) | set(m.event_ids))), current.group)
            else:
                if current is not None:
                    out.append(current)
                current = m
        if current is not None:
            out.append(current)
    return out


def run(store: Store, rules: RuleSet, since_ns: int | None = None,
        threads: int | None = None) -> tuple[list[Match], list[tuple[str, str]], int]:
    """Every rule over every stored event (with ``since_ns``: those from then on, the live
    recorder's window): (matches, rules that failed at run time as (path, reason), events scanned).
    On ``threads`` (``workers.thread_count``: two where there are two CPUs) the rules run in
    parallel over a scratch database file (``workers``); the result is the same."""
    n = min(workers.thread_count(threads), max(1, len(workers.units(rules))))
    columns = ""

    def evaluator(conn: sqlite3.Connection):
        regexps = Regexps(conn)
        return lambda unit: _run_unit(conn, unit, columns, regexps)

    if n == 1:
        conn = connect()
        try:
            columns = build_table(conn, rules.fields, stage(conn, store, since_ns), rules.field_rows)
            count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
            results = workers.run_serial(conn, rules, evaluator)
        finally:
            conn.close()
    else:
        with workers.scratch() as path:
            conn = connect(path)
            try:
                columns = build_halves(conn, path, store, since_ns, rules)
                count = conn.execute("SELECT count(*) FROM logs").fetchone()[0]
                results = workers.run_threads(conn, lambda: connect(path, readonly=True), n, rules, evaluator)
            finally:
                conn.close()
    matches, failed = workers.in_order(rules, results)
    return merge_overlapping(matches), failed, count


def _attack(tags: tuple[str, ...]) -> tuple[str | None, str | None, list[tuple[str, str]]]:
    tactic = technique = None
    meta = []
    for tag in tags:
        if not tag.startswith("attack."):
            continue
        name = tag.split(".", 1)[1]
        if re.fullmatch(r"t\d{4}(\.\d{3})?", name):
            meta.append(("mitre_technique_id", name.upper()))
            technique = technique or name.upper()
        elif re.fullmatch(r"[gs]\d{4}", name):
            meta.append(("mitre_software_or_group", name.upper()))
        else:
            meta.append(("mitre_tactic", name))
            tactic = tactic or name
    return tactic, technique, meta


def to_alerts(matches: list[Match], events: dict[int, dict]) -> list[tuple[Alert, dict]]:
    """Alert value objects (and the extra EVE keys: host, account, log event) for the matches."""
    out = []
    for m in matches:
        ev = events.get(m.event_ids[-1] if m.event_ids else -1, {})
        tactic, technique, meta = _attack(m.rule.tags)
        meta = [("sigma_id", m.rule.id), ("sigma_level", m.rule.level), ("sigma_rule", m.rule.path)] + meta
        alert = Alert(ts_ns=int(ev.get("ts_ns") or 0), signature_id=m.rule.signature_id, signature=m.rule.title,
                      severity=m.rule.severity, src_ip=ev.get("src_ip") or "", dest_ip="",
                      src_port=ev.get("src_port"), category="Sigma: " + (m.rule.level or "unknown level"),
                      tactic=tactic, technique=technique, rule_kind=None, metadata=tuple(meta))
        extra = {"host": ev.get("host"), "account": ev.get("account"),
                 "log": {"event_ids": list(m.event_ids), "kind": ev.get("kind"), "action": ev.get("action"),
                         "file": ev.get("path"), "line": ev.get("line")}}
        if m.group:
            extra["log"]["group"] = dict(m.group)
        out.append((alert, extra))
    return out


def eve_of(alert: Alert, extra: dict) -> dict:
    """The alert's EVE object with the log's side: ``host``, ``account`` and ``log`` (the events'
    ids, kind, action, file and line)."""
    eve = alert.to_eve()
    for key in ("host", "account"):
        if extra.get(key):
            eve[key] = extra[key]
    eve["log"] = {k: v for k, v in extra["log"].items() if v is not None}
    return json.loads(json.dumps(eve, default=str))


@dataclass(frozen=True, slots=True)
class Detection:
    """What ``detect`` found: the alerts (value object, EVE object) oldest first, the rules that
    failed at run time, how many events were scanned and how many rules fired."""

    alerts: tuple[tuple[Alert, dict], ...]
    failed: tuple[tuple[str, str], ...]
    events: int
    rules_fired: int


def alert_row(alert: Alert, eve: dict) -> dict:
    """A log alert as a row of the store's ``alerts`` table (``Store.add_alerts``)."""
    return {"capture_id": None, "ts_ns": alert.ts_ns, "uid": alert.uid, "flow_id": alert.flow_id,
            "community_id": None, "src_ip": alert.src_ip, "src_port": alert.src_port, "dest_ip": alert.dest_ip,
            "dest_port": None, "proto": None, "app_proto": None, "gid": alert.gid,
            "signature_id": alert.signature_id, "rev": alert.rev, "signature": alert.signature,
            "category": alert.category or None, "severity": alert.severity, "action": alert.action, "kind": "log",
            "tactic": alert.tactic, "technique": alert.technique, "eve": eve}


def detect(store: Store, rules: RuleSet, *, joined: bool, keep: bool, since_ns: int | None = None) -> Detection:
    """Every rule over the stored events (and, with ``joined``, the log-and-network detections of
    ``joined``); with ``keep`` the alerts go into the alerts table (an alert already there is not
    added twice); with ``since_ns`` only the events from then on."""
    from analysis.logs.joined import login_after_alert
    from analysis.logs.store import events_by_id

    matches, failed, count = run(store, rules, since_ns)
    events = events_by_id(store, [m.event_ids[-1] for m in matches if m.event_ids])
    pairs = to_alerts(matches, events)
    if joined:
        pairs += login_after_alert(store)
    pairs.sort(key=lambda p: (p[0].ts_ns, p[0].signature))
    found = tuple((a, eve_of(a, extra)) for a, extra in pairs)
    if keep and found:
        store.add_alerts(alert_row(a, eve) for a, eve in found)
    fired = len({(m.rule.path, m.rule.title) for m in matches}) + (1 if len(pairs) > len(matches) else 0)
    return Detection(found, tuple(failed), count, fired)
