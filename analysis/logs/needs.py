"""The groups a correlation can fire in, found for several correlations in one pass.

A correlation with ``needs`` (``sigma._needs``) can only fire in a group holding enough rows that
meet its conditions. Correlations grouped by the same fields (our three sshd rules, by
``src_ip``) read the same rows, so the rows any of them counts are read once (``NeedRows``): their
group keys, time and, per condition or prefilter, a 0/1 flag, into a temporary table indexed on
(keys, time, flags). Each correlation's questions (which groups hold enough such rows at all,
which of those in one window; which rows it runs its plan over) are then answered from that
index in key order, with no sort of the events per rule."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from analysis.logs.layout import EVENT_ID, quote
from analysis.logs.sigma import CompiledRule

TABLE = "temp.wt_need"


class NeedRows:
    """The rows the ``rules`` (correlations with ``needs``, all of the same ``groups``) count, in
    ``temp.wt_need`` on ``conn``: the event id, ``k0``... (the group keys, with the ``logs``
    columns' types: text compared case-insensitively), ``ts`` (the time) and one flag per
    condition. ``close`` drops it."""

    def __init__(self, conn: sqlite3.Connection, rules: Sequence[CompiledRule]) -> None:
        self.conn = conn
        self.groups = rules[0].groups
        self.flags: dict[str, str] = {}  # condition (SQL over logs) -> its flag column
        for rule in rules:
            for cond in (rule.prefilter or "0", *(c for c, _n, _span in rule.needs)):
                self.flags.setdefault(cond, f"f{len(self.flags)}")
        self.keys = ", ".join(f"k{i}" for i in range(len(self.groups)))
        kinds = ", ".join(f"k{i} {'REAL' if g == 'timestamp' else 'TEXT COLLATE NOCASE'}"
                          for i, g in enumerate(self.groups))
        flags = ", ".join(f"{f} INTEGER" for f in self.flags.values())
        wheres = list(dict.fromkeys(f"({r.prefilter or '0'})" for r in rules))
        # Several prefilters ORed: SQLite would read each one's rows through the kind index apart
        # (the sshd rows three times over for our rules); one scan of the table costs less.
        source = "main.logs NOT INDEXED" if len(wheres) > 1 else "main.logs"
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")  # one left by a statement that failed
        conn.execute(f"CREATE TEMP TABLE wt_need ({EVENT_ID} INTEGER PRIMARY KEY, {kinds}, ts REAL, {flags})")
        try:
            values = ", ".join(f"CASE WHEN ({cond}) THEN 1 ELSE 0 END" for cond in self.flags)
            conn.execute(f"INSERT INTO {TABLE} SELECT {EVENT_ID}, {', '.join(map(quote, self.groups))}, "
                         f"timestamp, {values} FROM {source} WHERE {' OR '.join(wheres)}")
            conn.execute(f"CREATE INDEX temp.wt_need_k ON wt_need ({self.keys}, ts, "
                         f"{', '.join(self.flags.values())})")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self.conn.execute(f"DROP TABLE IF EXISTS {TABLE}")

    def can_fire(self, rule: CompiledRule) -> list:
        """The keys of the groups where ``rule`` can fire: those with enough rows meeting each of
        its needs in all, and of those, where it has a timespan, enough in one window ending at a
        row (a window function per need over the index's order: no sort)."""
        where = f"{self.flags[rule.prefilter or '0']} = 1"
        total = " AND ".join(f"sum({self.flags[c]}) >= {int(n)}" for c, n, _span in rule.needs)
        keys = self.conn.execute(f"SELECT {self.keys} FROM {TABLE} WHERE {where} "
                                 f"GROUP BY {self.keys} HAVING {total}").fetchall()
        if not keys or not any(span for _c, _n, span in rule.needs):
            return keys
        self.keep(keys)
        counts, having = [], []
        for i, (cond, n, span) in enumerate(rule.needs):
            frame = f" ORDER BY ts RANGE BETWEEN {int(span)} PRECEDING AND CURRENT ROW" if span else ""
            counts.append(f"sum({self.flags[cond]}) OVER (PARTITION BY {self.keys}{frame}) AS wt_need{i}")
            having.append(f"max(wt_need{i}) >= {int(n)}")
        try:
            return self.conn.execute(
                f"SELECT {self.keys} FROM (SELECT {self.keys}, {', '.join(counts)} FROM {TABLE} "
                f"WHERE {where} AND ts IS NOT NULL AND ({self.keys}) IN (SELECT * FROM temp.wt_groups)) "
                f"GROUP BY {self.keys} HAVING {' AND '.join(having)}").fetchall()
        finally:
            self.conn.execute("DROP TABLE temp.wt_groups")

    def keep(self, keys: list) -> None:
        """The group keys into ``temp.wt_groups`` (one column per group-by field)."""
        self.conn.execute("DROP TABLE IF EXISTS temp.wt_groups")  # one left by a statement that failed
        self.conn.execute(f"CREATE TEMP TABLE wt_groups ({self.keys})")
        self.conn.executemany(f"INSERT INTO temp.wt_groups VALUES ({', '.join('?' * len(self.groups))})", keys)

    def rows(self, rule: CompiledRule, keys: list) -> str:
        """SQL selecting the ids of the events ``rule`` counts in the groups ``keys`` (kept in
        ``temp.wt_groups`` until the caller drops it)."""
        self.keep(keys)
        return (f"SELECT {EVENT_ID} FROM {TABLE} WHERE {self.flags[rule.prefilter or '0']} = 1 "
                f"AND ({self.keys}) IN (SELECT * FROM temp.wt_groups)")
