"""Log events in the store: one ``log_sources`` row per file, its events written in batches
(through ``recorder.core.store.insert_tuples``), and the filtered listing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from analysis.logs.model import LogEvent, address
from recorder.core.schema import LOG_EVENT_FIELDS, log_events, log_sources
from recorder.core.store import Store, clean_text, insert_tuples

BATCH = 50_000


def _fields_encoder() -> Callable[[Any], str]:
    """Compact JSON (non-ASCII kept, anything else as ``str``): the json module's C encoder built
    once rather than per call, and without the cycle check (fields come from parsers, never cyclic);
    ``json.JSONEncoder`` where the C encoder is missing."""
    from json.encoder import c_make_encoder, encode_basestring

    if c_make_encoder is None:
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
    encode = c_make_encoder(None, str, encode_basestring, None, ":", ",", False, False, True)
    return lambda obj: "".join(encode(obj, 0))


_JSON_FIELDS = _fields_encoder()

try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # a platform without an orjson wheel: the json module alone
    _orjson_dumps = None


def _fields_json(obj: Any) -> str:
    """An event's fields as compact JSON text by orjson: the text ``_JSON_FIELDS`` writes (but for
    a float's notation, ``0.00001`` for ``1e-05``, and a NaN or infinity as ``null``, valid JSON,
    rather than ``NaN``) in a sixth of its time (measured 2026-12-07: 0.9 against 5.5 µs for a web
    line's eleven fields, about 4.6 CPU-s of a million-line ingest's ~36). What orjson refuses
    (integers over 64 bits, keys that are not strings) goes to the json module."""
    try:
        return _orjson_dumps(obj, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _JSON_FIELDS(obj)


_FIELDS_JSON = _fields_json if _orjson_dumps is not None else _JSON_FIELDS


def add_source(store: Store, *, path: str, sha256: str, kind: str, host: str | None) -> int:
    with store.db_errors("record log file"), store.engine.begin() as conn:
        result = conn.execute(log_sources.insert().values(path=path, sha256=sha256, kind=kind, host=host,
                                                          events=0, skipped=0, ingested_at=time.time_ns()))
        return int(result.inserted_primary_key[0])


def source_by_sha256(store: Store, sha256: str) -> dict | None:
    with store.db_errors("read log files"), store.engine.connect() as conn:
        row = conn.execute(sa.select(log_sources).where(log_sources.c.sha256 == sha256).limit(1)).first()
        return dict(row._mapping) if row else None


def drop_source(store: Store, source_id: int) -> None:
    """A file's source row and events gone (an ingest that failed before any was stored)."""
    with store.db_errors("record log file"), store.engine.begin() as conn:
        conn.execute(log_events.delete().where(log_events.c.source_id == source_id))
        conn.execute(log_sources.delete().where(log_sources.c.id == source_id))


def finish_source(store: Store, source_id: int, *, kind: str, events: int, skipped: int) -> None:
    with store.db_errors("record log file"), store.engine.begin() as conn:
        conn.execute(log_sources.update().where(log_sources.c.id == source_id)
                     .values(kind=kind, events=events, skipped=skipped))


def _row(source_id: int, host: str | None, ev: LogEvent) -> tuple:
    found = address(ev.src_ip) if ev.src_ip else None
    return (source_id, ev.line, ev.ts_ns, ev.host or host, ev.kind, ev.src_ip, found[1] if found else None,
            ev.src_port,
            clean_text(ev.account), clean_text(ev.action), ev.outcome, clean_text(ev.raw),
            _FIELDS_JSON(ev.fields) if ev.fields else None)


def _clean_row(source_id: int, host: str | None, ev: LogEvent) -> tuple:
    """``_row`` for events read from checked text lines (valid UTF-8, no NUL:
    ``reading.lines``), whose account, action and raw line need no escaping."""
    line, kind, ts_ns, ev_host, src_ip, src_port, account, action, outcome, raw, fields = ev
    found = address(src_ip) if src_ip else None
    return (source_id, line, ts_ns, ev_host or host, kind, src_ip, found[1] if found else None, src_port,
            account, action, outcome, raw, _FIELDS_JSON(fields) if fields else None)


# While a large load runs on SQLite with its indexes deferred: no foreign-key lookup per row (every
# row names the source just added) and the WAL checkpointed after the load rather than every 1000
# pages. ``synchronous`` stays NORMAL: OFF saved no CPU worth having and would put the whole case
# file (flows, alerts) at risk on a power loss during the load.
_LOAD_PRAGMAS = {"foreign_keys": "OFF", "wal_autocheckpoint": "1000000"}


def row_maker(checked_text: bool) -> Callable[[int, str | None, LogEvent], tuple]:
    """The function making an event's row: ``_clean_row`` for events from checked text lines."""
    return _clean_row if checked_text else _row


def write_events(store: Store, source_id: int, host: str | None, events: Iterable[LogEvent],
                 expected: int = 0, *, checked_text: bool = False) -> int:
    """Write the events in batches of ``BATCH`` rows; returns how many were written.
    ``checked_text``: the events come from text lines already checked (``_clean_row``).

    On SQLite, when about ``expected`` rows are coming and the table holds fewer than that, the
    table's indexes are dropped for the load and built again at its end (``_loading``)."""
    n = 0
    batch: list[tuple] = []
    row = row_maker(checked_text)
    with store.db_errors("write log events"), store.engine.connect() as conn, _loading(store, conn, expected):
        for ev in events:
            batch.append(row(source_id, host, ev))
            if len(batch) >= BATCH:
                with conn.begin():
                    insert_tuples(conn, "log_events", LOG_EVENT_FIELDS, batch)
                n += len(batch)
                batch = []
        if batch:
            with conn.begin():
                insert_tuples(conn, "log_events", LOG_EVENT_FIELDS, batch)
            n += len(batch)
    return n


def copy_events(store: Store, scratch: Iterable[str], expected: int = 0) -> int:
    """The ``log_events`` rows of SQLite files written apart (``parallel``), each file's in its
    rowid order and the files in the order given, copied into the store's table by SQLite (no
    Python per row), one transaction per file, each file copied as soon as ``scratch`` gives it
    (the next may still be being written); returns how many. Indexes as ``write_events``."""
    n = 0
    with store.db_errors("write log events"), store.engine.connect() as conn, _loading(store, conn, expected):
        for path in scratch:
            n += _copy(conn, path)
    return n


def _copy(conn: sa.Connection, path: str) -> int:
    cols = ", ".join(LOG_EVENT_FIELDS)
    attached = False
    try:
        conn.exec_driver_sql("ATTACH DATABASE ? AS scratch", (path,))  # outside a transaction, as SQLite requires
        attached = True
        conn.commit()
        with conn.begin():
            return conn.exec_driver_sql(f"INSERT INTO log_events ({cols}) SELECT {cols} "
                                        "FROM scratch.log_events ORDER BY rowid").rowcount
    finally:
        if conn.in_transaction():
            conn.rollback()
        if attached:
            conn.exec_driver_sql("DETACH DATABASE scratch")
        conn.commit()


@contextmanager
def _loading(store: Store, conn: sa.Connection, expected: int) -> Iterator[None]:
    """A load of about ``expected`` rows into ``log_events``. On SQLite, when the table holds fewer
    rows than that, its indexes on keys that arrive in no order (``_DEFERRED_COLUMNS``) are dropped
    for the load and built again at its end (one sort per index rather than a B-tree insert per row
    and index), with ``_LOAD_PRAGMAS`` in force meanwhile; they are built again whatever happens,
    and any missing beforehand (an ingest cut short) is built first."""
    deferred = store.is_sqlite and expected > 0 and _deferrable(conn, expected)
    before = _pragmas(conn, _LOAD_PRAGMAS) if deferred else {}
    try:
        yield
    finally:
        if deferred:
            if conn.in_transaction():
                conn.rollback()
            with conn.begin():
                for index in log_events.indexes:
                    index.create(conn, checkfirst=True)
            _pragmas(conn, before)


def _pragmas(conn: sa.Connection, values: dict[str, str]) -> dict[str, str]:
    """Set SQLite pragmas on this connection (outside a transaction); returns their values before."""
    before = {}
    for name, value in values.items():
        before[name] = str(conn.exec_driver_sql(f"PRAGMA {name}").scalar())
        conn.exec_driver_sql(f"PRAGMA {name} = {value}")
    conn.commit()
    return before


def _deferrable(conn: sa.Connection, expected: int) -> bool:
    with conn.begin():
        for index in log_events.indexes:  # one left out by an ingest cut short comes back first
            index.create(conn, checkfirst=True)
        held = conn.execute(sa.select(sa.func.max(log_events.c.id))).scalar() or 0
        if held >= expected:
            return False
        for index in _deferred_indexes():
            index.drop(conn)
    return True


# The indexes dropped for a large load: those whose keys arrive in no order (addresses, accounts),
# where each row's entry is a B-tree insert anywhere. The others' keys arrive in order (one
# source_id, the uid NULL until linked, a log's times rising) and their entries land at the end of
# a run, which costs less during the copy (beside the workers) than a sort of the whole table after it.
_DEFERRED_COLUMNS = ("src_a", "account")


def _deferred_indexes() -> list[sa.Index]:
    return [ix for ix in log_events.indexes if {c.name for c in ix.columns} <= set(_DEFERRED_COLUMNS)]


def query_events(store: Store, *, host: str | None = None, account: str | None = None,
                 since: int | None = None, until: int | None = None, kind: str | None = None,
                 limit: int | None = None, batch: int = 1000) -> Iterator[dict]:
    """Events ordered by (ts_ns, id). ``host`` matches the event's host name or, as an IP or CIDR,
    its source address; ``account`` is case-insensitive and exact; ``since`` inclusive, ``until``
    exclusive (ns)."""
    c = log_events.c
    stmt = sa.select(*(col for col in log_events.c if col.name != "src_a"), log_sources.c.path) \
        .select_from(log_events.outerjoin(log_sources, log_sources.c.id == c.source_id))
    if host is not None:
        from recorder.core.store import host_range

        try:
            lo, hi = host_range(host)
        except ValueError:
            stmt = stmt.where(sa.func.lower(c.host) == host.lower())
        else:
            stmt = stmt.where(c.src_a.between(lo, hi))
    if account is not None:
        stmt = stmt.where(sa.func.lower(c.account) == account.lower())
    if since is not None:
        stmt = stmt.where(c.ts_ns >= since)
    if until is not None:
        stmt = stmt.where(c.ts_ns < until)
    if kind is not None:
        stmt = stmt.where(c.kind == kind)
    stmt = stmt.order_by(c.ts_ns, c.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return store.stream(stmt, batch, "read log events")


def events_by_id(store: Store, ids: Iterable[int]) -> dict[int, dict]:
    """id -> event row (without fields), for the events alerts name."""
    wanted = sorted(set(ids))
    out: dict[int, dict] = {}
    c = log_events.c
    with store.db_errors("read log events"), store.engine.connect() as conn:
        for i in range(0, len(wanted), 500):
            stmt = sa.select(c.id, c.ts_ns, c.host, c.kind, c.src_ip, c.src_port, c.account, c.action,
                             c.outcome, c.line, c.source_id, log_sources.c.path) \
                .select_from(log_events.outerjoin(log_sources, log_sources.c.id == c.source_id)) \
                .where(c.id.in_(wanted[i:i + 500]))
            out.update((int(r.id), dict(r._mapping)) for r in conn.execute(stmt))
    return out
