"""The ``logs`` table a detection run evaluates its rules over: the stored events laid out once,
one ``TEXT COLLATE NOCASE`` column per field any loaded rule names (see ``detect``), in memory or,
for a run on two threads, in a scratch database file laid out in two halves at once."""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import quote as url_quote

from analysis.logs.sigma import Rows, RuleSet
from recorder.core.store import Store

# pseudo-field (lower case) -> SQL over the staging table ``ev``
PSEUDO = {
    "wt_source": "ev.source_kind", "wt_kind": "ev.kind", "host": "ev.host", "account": "ev.account",
    "action": "ev.action", "outcome": "ev.outcome", "src_ip": "ev.src_ip", "src_port": "ev.src_port",
    "timestamp": "ev.ts_ns / 1e9", "_raw": "COALESCE(ev.raw, ev.fields)",
}
EVENT_ID = "wt_event_id"



def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _json_path(name: str) -> str:
    return '$."' + name.replace('"', '\\"') + '"'


@lru_cache(maxsize=4096)
def _regex(pattern: str) -> re.Pattern | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def regexp(pattern: str | None, value) -> bool:
    if pattern is None or value is None:
        return False
    rx = _regex(pattern)
    return bool(rx is not None and rx.search(str(value)))


def connect(path: str = ":memory:", *, readonly: bool = False) -> sqlite3.Connection:
    """A connection with ``regexp``: to a new in-memory database, or to a scratch database file
    (``workers.scratch``) that only this run reads: no journal, no syncs, pages mapped in."""
    if path == ":memory:":
        conn = sqlite3.connect(path)
    else:
        conn = sqlite3.connect(f"file:{url_quote(path)}?mode=ro" if readonly else path, uri=readonly)
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "temp_store = MEMORY",
                       "cache_size = -262144", "mmap_size = 4294967296"):
            conn.execute(f"PRAGMA {pragma}")
    conn.create_function("regexp", 2, regexp, deterministic=True)
    return conn


_EVENTS = ("SELECT e.id, e.ts_ns, e.host, e.kind, e.src_ip, e.src_port, e.account, e.action, e.outcome, "
           "e.raw, e.fields, s.kind AS source_kind FROM {p}log_events e "
           "LEFT JOIN {p}log_sources s ON s.id = e.source_id")


def stage(conn: sqlite3.Connection, store: Store, since_ns: int | None = None) -> str:
    """Where ``build_table`` reads the stored events (id, ts_ns, host, kind, ..., fields, source
    kind) as ``ev``: a SQLite store attached and read in place, or a PostgreSQL store's events
    copied into a table ``ev`` through Python; with ``since_ns``, only the events from then on."""
    path = store.engine.url.database if store.is_sqlite else None
    recent = f" WHERE e.ts_ns >= {int(since_ns):d}" if since_ns is not None else ""
    if path and path != ":memory:":
        conn.execute("ATTACH DATABASE ? AS store", (path,))
        return "(" + _EVENTS.format(p="store.") + recent + ")"
    conn.execute("CREATE TABLE ev (id INTEGER PRIMARY KEY, ts_ns INTEGER, host TEXT, kind TEXT, src_ip TEXT, "
                 "src_port INTEGER, account TEXT, action TEXT, outcome TEXT, raw TEXT, fields TEXT, "
                 "source_kind TEXT)")
    with store.db_errors("read log events"), store.engine.connect() as sconn:
        result = sconn.exec_driver_sql(_EVENTS.format(p="") + recent)
        while rows := result.fetchmany(10_000):
            conn.executemany("INSERT INTO ev VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", [tuple(r) for r in rows])
    return "ev"


def _on_rows(rows: Rows) -> str:
    """SQL over ``ev`` true on the rows (``sigma.Rows``)."""
    def cond(name: str, values: tuple[str, ...]) -> str:
        return f"{PSEUDO[name]} IN ({', '.join(_literal(v) for v in values)})"
    return " OR ".join("(" + " AND ".join(cond(n, vs) for n, vs in alt) + ")" for alt in rows) or "0"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def build_table(conn: sqlite3.Connection, fields: frozenset[str], source: str = "ev",
                rows: dict[str, Rows | None] | None = None, *, ids: str = "",
                then: Callable[[sqlite3.Connection], None] | None = None, index: bool = True) -> str:
    """The ``logs`` table of every field the rules name, from the events in ``source`` (``stage``);
    returns its column definitions. With ``rows`` (``RuleSet.field_rows``), a field of the events'
    JSON is read only on the rows where a rule naming it can match (NULL elsewhere: no rule's
    condition holds there whatever its value), so rows of other kinds are not parsed for it.
    ``ids`` (SQL over ``ev``) keeps only some events; ``then`` runs once they are in
    (``build_halves`` adds the rows another thread laid out); without ``index``, no indexes.

    The indexes on the source's pseudo-fields are made before the rows go in, not sorted after:
    rows arrive in id order and those columns hold a few values, so each index entry lands at the
    end of its value's run. Measured 2026-12-07 on the 1M-line bench (one thread, two runs
    each): 4.5-5.0 s for the whole table against 5.5-6.2 s with the indexes made afterwards."""
    seen: dict[str, str] = {}
    for name in sorted(fields):
        if name.lower() != EVENT_ID and name.lower() != "rowid":
            seen.setdefault(name.lower(), name)
    seen.setdefault("timestamp", "timestamp")
    names = list(seen.values())
    columns = ", ".join(f"{quote(n)} {'REAL' if n.lower() == 'timestamp' else 'TEXT COLLATE NOCASE'}"
                        for n in names)
    conn.execute(f"CREATE TABLE logs ({EVENT_ID} INTEGER PRIMARY KEY, {columns})")
    if index:
        # Every rule of a log source we read starts with its source's condition (``sigma``'s
        # pipeline): indexed, a rule reads only the rows of its source instead of the whole table.
        for name in ("wt_kind", "wt_source"):
            if name in seen:
                conn.execute(f"CREATE INDEX logs_{name} ON logs ({quote(seen[name])})")
    exprs = []
    for n in names:
        if n.lower() in PSEUDO:
            exprs.append(PSEUDO[n.lower()])
            continue
        value, where = f"json_extract(ev.fields, '{_json_path(n)}')", (rows or {}).get(n.lower())
        exprs.append(value if where is None else f"CASE WHEN {_on_rows(where)} THEN {value} END")
    conn.execute(f"INSERT INTO logs ({EVENT_ID}, {', '.join(map(quote, names))}) "
                 f"SELECT ev.id, {', '.join(exprs)} FROM {source} AS ev" + (f" WHERE {ids}" if ids else ""))
    conn.commit()
    if then is not None:
        then(conn)
    if source == "ev":
        conn.execute("DROP TABLE ev")
    else:
        conn.execute("DETACH DATABASE store")
    if not index:
        return f"{EVENT_ID} INTEGER PRIMARY KEY, {columns}"
    conn.execute("PRAGMA analysis_limit = 1000")
    conn.execute("ANALYZE")
    conn.commit()
    return f"{EVENT_ID} INTEGER PRIMARY KEY, {columns}"


SPLIT_MIN = 20_000  # events below which the table is laid out in one pass


def build_halves(conn: sqlite3.Connection, path: str, store, since_ns: int | None, rules: RuleSet) -> str:
    """``detect.build_table`` into the scratch database ``path`` (``conn``), from a SQLite store
    in two halves at once: the events up to the middle id here, the others on a second thread into
    a file beside it, whose rows are then copied in (a plain copy, a tenth of the cost of reading
    the fields from JSON) into the indexed table. Events copied from PostgreSQL (``stage``'s
    table ``ev``) or a few events: one pass. Returns the column definitions."""
    source = stage(conn, store, since_ns)
    recent = f" WHERE ts_ns >= {int(since_ns):d}" if since_ns is not None else ""
    # two subqueries: SQLite answers a lone min() or max() from the key's B-tree, both in one
    # SELECT by a scan of the whole table (0.3 s for 1M events)
    lo, hi = (None, None) if source == "ev" else conn.execute(
        f"SELECT (SELECT min(id) FROM store.log_events{recent}), "
        f"(SELECT max(id) FROM store.log_events{recent})").fetchone()
    if lo is None or hi - lo < SPLIT_MIN:
        return build_table(conn, rules.fields, source, rules.field_rows)
    mid = (lo + hi) // 2
    other = path + ".half"  # in the scratch folder, removed with it
    errors: list[BaseException] = []
    held: list[sqlite3.Connection] = []

    def second() -> None:
        try:
            half = connect(other)
            held.append(half)
            try:
                build_table(half, rules.fields, stage(half, store, since_ns), rules.field_rows,
                            ids=f"ev.id > {mid:d}", index=False)
            finally:
                half.close()
        except BaseException as err:  # noqa: BLE001 - handed to the main thread
            errors.append(err)

    def join(c: sqlite3.Connection) -> None:
        thread.join()
        if errors:
            raise errors[0]
        c.execute("ATTACH DATABASE ? AS half", (other,))
        c.execute("INSERT INTO main.logs SELECT * FROM half.logs")
        c.commit()
        c.execute("DETACH DATABASE half")
        os.remove(other)

    thread = threading.Thread(target=second, name="wiretrail-detect-layout", daemon=True)
    thread.start()
    try:
        return build_table(conn, rules.fields, source, rules.field_rows, ids=f"ev.id <= {mid:d}", then=join)
    except BaseException:
        for half in held:
            half.interrupt()
        raise
    finally:
        thread.join()
