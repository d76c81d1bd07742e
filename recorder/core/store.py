"""The flow store: SQLite (WAL) by default, PostgreSQL for many sensors, one schema for both.

    store = Store("case.db")              # or "postgresql://user:pw@host/db"
    store.ensure_schema()                 # migrates when the database is not at head
    cid = store.add_capture(path=..., sha256=..., format="pcap", ...)
    with store.flow_writer() as w:        # the one writer (a process) of this database
        w.put(rows)                       # lists of dicts with exactly schema.FLOW_FIELDS keys
    for row in store.query_flows(host="10.0.0.0/8", port=53):
        ...

Every database failure (cannot open, permission, not a database, connection refused, constraint
violated) is raised as ``StoreError`` whose ``str`` is one line naming the database.
"""

from __future__ import annotations

import ipaddress
import json
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url

import recorder.core as _core
from recorder.core.errors import StoreError
from recorder.core.flowrows import FlowBatch
from recorder.core.schema import (
    ALERT_FIELDS,
    CAPTURE_FIELDS,
    FLOW_FIELDS,
    alerts,
    captures,
    flows,
    metadata,
    open_flows,
)

DEFAULT_DB = "./wiretrail.db"
MIGRATIONS_DIR = Path(_core.__file__).with_name("migrations")  # not this file's: it may be compiled elsewhere
SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK = int.from_bytes(b"wiretrl")  # PostgreSQL advisory lock key held while migrating

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- addresses ------------------------------------------------------------------------------

def addr16(ip: str | IPAddress) -> bytes:
    """The 16-byte form stored in ``orig_a``/``resp_a``: IPv6 as is, IPv4 as ``::ffff:a.b.c.d``."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def host_range(text: str) -> tuple[bytes, bytes]:
    """First and last 16-byte address of an IP or CIDR (``10.0.0.0/8``, ``2001:db8::/32``).

    Host bits in a CIDR are ignored (``10.1.2.3/8`` is ``10.0.0.0/8``). Raises ``ValueError``.
    """
    net = ipaddress.ip_network(text.strip(), strict=False)
    return addr16(net.network_address), addr16(net.broadcast_address)


# --- the store ------------------------------------------------------------------------------

def _engine_url(db: str) -> tuple[sa.URL, str]:
    """SQLAlchemy URL and the name shown to users (the path, or the URL with password masked)."""
    if "://" not in db:
        return sa.URL.create("sqlite", database=db), db
    if db.startswith("postgres://"):  # the libpq/Heroku spelling
        db = "postgresql://" + db[len("postgres://"):]
    url = make_url(db)
    shown = url.render_as_string(hide_password=True)
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url, shown


def _schema_lock(conn: Connection) -> None:
    """Processes starting together change the schema in turn; on SQLite this also makes the DDL
    one transaction (pysqlite would otherwise run it outside any transaction)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _first_line(err: BaseException) -> str:
    orig = getattr(err, "orig", None) or err
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return lines[0] if lines else type(orig).__name__


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    try:
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -65536")  # 64 MiB: index inserts of a large ingest stay in memory
    finally:
        cur.close()


class Store:
    """One Wiretrail database. ``db`` is a file path (SQLite) or a SQLAlchemy URL.

    ``create=False`` refuses to create a missing SQLite file (for read-only commands).
    The object is safe to share between threads; ``close()`` disposes of the connection pool.
    """

    def __init__(self, db: str = DEFAULT_DB, *, create: bool = True) -> None:
        self.db = db
        url, self.display = _engine_url(db)
        self.is_sqlite = url.get_backend_name() == "sqlite"
        if self.is_sqlite and not create:
            path = url.database or ""
            if path in ("", ":memory:") or not Path(path).exists():
                raise StoreError(f"no database at {path or db}; run wiretrail ingest first")
        self._head: str | None = None
        with self._errors("open database"):
            self.engine: Engine = sa.create_engine(url)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_on_connect)

    # -- plumbing

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn any driver/SQLAlchemy/OS error inside the block into a one-line StoreError."""
        try:
            yield
        except StoreError:
            raise
        except (sa.exc.SQLAlchemyError, OSError, ImportError) as err:
            raise StoreError(f"cannot {action}: {_first_line(err)}", path=self.display) from err
        except Exception as err:
            if self._is_dbapi_error(err):
                raise StoreError(f"cannot {action}: {_first_line(err)}", path=self.display) from err
            raise

    def _is_dbapi_error(self, err: BaseException) -> bool:
        dbapi = getattr(getattr(self, "engine", None), "dialect", None)
        dbapi = getattr(dbapi, "loaded_dbapi", None)
        return dbapi is not None and isinstance(err, dbapi.Error)

    def _alembic_config(self, connection: Connection):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["connection"] = connection
        return cfg

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- schema

    def head(self) -> str:
        """The newest migration revision this code knows."""
        if self._head is None:
            from alembic.script import ScriptDirectory

            with self._errors("read migrations"):
                script = ScriptDirectory(str(MIGRATIONS_DIR))
                self._head = script.get_current_head()
        return self._head or ""

    def revision(self) -> str | None:
        """The database's migration revision, None for an empty database.

        Read with one plain query (what alembic stores in ``alembic_version``), so commands that
        only check the schema do not pay for importing alembic.
        """
        with self._errors("open database"), self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def migrate(self) -> str:
        """Bring the schema to the newest revision (alembic upgrade head); returns the revision."""
        from alembic import command
        from alembic.util import CommandError

        current = self.revision()
        head = self.head()
        try:
            with self._errors("migrate database"), self.engine.begin() as conn:
                _schema_lock(conn)
                command.upgrade(self._alembic_config(conn), "head")
        except CommandError as err:
            raise StoreError(f"cannot migrate database at revision {current} to {head}: {err}",
                             path=self.display) from err
        return head

    def ensure_schema(self) -> None:
        """Migrate only when the database is not at head (one cheap query otherwise).

        An empty database gets the current schema directly and is stamped at head, as Alembic
        recommends for new databases (a test checks that this equals running every migration);
        an older one is migrated.
        """
        current = self.revision()
        if current == SCHEMA_HEAD:
            return
        if current is None:
            with self._errors("create database"), self.engine.begin() as conn:
                _schema_lock(conn)
                if not sa.inspect(conn).has_table("alembic_version"):  # nobody else created it meanwhile
                    metadata.create_all(conn)
                    conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, "
                                         "CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))")
                    conn.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES (:v)"),
                                 {"v": SCHEMA_HEAD})
            if self.revision() == SCHEMA_HEAD:
                return
        self.migrate()

    def require_schema(self) -> None:
        """Raise StoreError unless the database holds the current schema (for read commands)."""
        current = self.revision()
        if current is None:
            raise StoreError("no Wiretrail tables here; run wiretrail ingest or wiretrail db migrate",
                             path=self.display)
        if current != self.head():
            raise StoreError(f"schema revision {current}, this version needs {self.head()}; "
                             "run wiretrail db migrate", path=self.display)

    # -- captures

    def add_capture(self, **fields: Any) -> int:
        """Record a capture file; returns its id. ``ingested_at`` defaults to now (ns, UTC)."""
        _check_fields(fields, CAPTURE_FIELDS, "capture")
        fields.setdefault("ingested_at", time.time_ns())
        with self._errors("record capture"), self.engine.begin() as conn:
            result = conn.execute(captures.insert().values(**fields))
            return int(result.inserted_primary_key[0])

    def capture_by_sha256(self, sha256: str) -> dict | None:
        with self._errors("read captures"), self.engine.connect() as conn:
            row = conn.execute(captures.select().where(captures.c.sha256 == sha256)).mappings().first()
            return dict(row) if row is not None else None

    def update_capture(self, capture_id: int, **fields: Any) -> None:
        _check_fields(fields, CAPTURE_FIELDS, "capture")
        if not fields:
            return
        with self._errors("update capture"), self.engine.begin() as conn:
            result = conn.execute(captures.update().where(captures.c.id == capture_id).values(**fields))
            if result.rowcount == 0:
                raise StoreError(f"no capture with id {capture_id}", path=self.display)

    def captures(self, *, size: int | None = None) -> list[dict]:
        """Captures in the store, oldest first; with ``size``, only files of that many bytes."""
        query = captures.select().order_by(captures.c.id)
        if size is not None:
            query = query.where(captures.c.bytes == size)
        with self._errors("read captures"), self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def last_chain(self, sensor: str | None, interface: str | None) -> str | None:
        """The chain value of the newest sealed capture of one recorder stream, or None."""
        query = (sa.select(captures.c.chain).where(
            captures.c.origin == "recorder", captures.c.sealed_at.is_not(None),
            captures.c.sensor == sensor, captures.c.interface == interface)
            .order_by(captures.c.sealed_at.desc(), captures.c.id.desc()).limit(1))
        with self._errors("read captures"), self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def capture_by_path(self, path: str) -> dict | None:
        """The newest capture row recorded for ``path``."""
        query = captures.select().where(captures.c.path == path).order_by(captures.c.id.desc()).limit(1)
        with self._errors("read captures"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            return dict(row) if row is not None else None

    # -- flows

    def flow_writer(self, *, batch_rows: int = 20_000, queue_batches: int = 16) -> FlowWriter:
        """The writer process for flow rows; use as a context manager or call ``close()``."""
        return FlowWriter(self, batch_rows=batch_rows, queue_batches=queue_batches)

    def insert_flows(self, rows: Sequence[dict] | Sequence[tuple], connection: Connection | None = None) -> int:
        """Insert flow rows in one transaction, synchronously (the writer process's primitive).

        Rows are dicts with the FLOW_FIELDS keys, or tuples of values in FLOW_FIELDS order (what the
        flow meter hands over, without building a dict per flow).
        """
        if not rows:
            return 0
        if isinstance(rows, FlowBatch):
            rows = rows.rows()
            if not rows:
                return 0
        try:
            values = rows if isinstance(rows[0], tuple) else list(map(_FLOW_VALUES, rows))
        except KeyError as err:
            raise StoreError(f"cannot write flows: a flow row has no field {err}",
                             path=self.display) from None
        with self._errors("write flows"):
            if connection is None:
                with self.engine.connect() as conn:
                    _insert_flow_batch(conn, values)
            else:
                _insert_flow_batch(connection, values)
        return len(values)

    def replace_open_flows(self, stream: str, batch: FlowBatch | None, as_of_ns: int) -> int:
        """Make ``batch`` (the meter's snapshot) the interim records of ``stream``; returns rows."""
        rows = [] if batch is None else batch.rows()
        values = [{"stream": stream, "as_of_ns": as_of_ns, **dict(zip(FLOW_FIELDS, r))} for r in rows]
        with self._errors("write open flows"), self.engine.begin() as conn:
            conn.execute(open_flows.delete().where(open_flows.c.stream == stream))
            if values:
                conn.execute(open_flows.insert(), values)
        return len(values)

    def query_flows(self, *, host: str | None = None, port: int | None = None, proto: str | None = None,
                    since: int | None = None, until: int | None = None,
                    states: Iterable[str] | None = None, uid: str | None = None,
                    limit: int | None = None, batch: int = 1000, open_only: bool = False) -> Iterator[dict]:
        """Flow rows matching every given filter, ordered by (ts_ns, id), streamed as dicts.

        ``host`` is an IP or CIDR matched on either side; ``port`` either side; ``since`` inclusive
        and ``until`` exclusive, both ns since the epoch on ``ts_ns``; ``states`` any of these
        conn_state values. With ``open_only``, the recorder's interim records of connections that
        were still open at its last rotation (table open_flows, with ``as_of_ns``) instead.
        Raises ValueError for a bad host or limit, before touching the database.
        """
        table = open_flows if open_only else flows
        # True when the recorder lost packets (kernel or interface drops) while a file of the
        # flow's sensor was open during the flow: its counts may be short.
        lossy = captures.alias("lossy")
        own = captures.alias("own")
        end = table.c.ts_ns + sa.func.coalesce(table.c.duration_ns, 0)
        drops = sa.exists().where(
            lossy.c.origin == "recorder",
            sa.func.coalesce(lossy.c.kernel_drops, 0) + sa.func.coalesce(lossy.c.iface_drops, 0) > 0,
            lossy.c.ingested_at <= end,
            sa.func.coalesce(lossy.c.sealed_at, lossy.c.last_ts_ns) >= table.c.ts_ns,
            lossy.c.sensor == sa.select(own.c.sensor).where(own.c.id == table.c.capture_id)
            .correlate(table).scalar_subquery(),
        )
        stmt = _where_endpoints(sa.select(table, drops.label("capture_drops")), table,
                                ("orig_a", "resp_a", "orig_p", "resp_p"), host, port, proto, since, until)
        if states is not None:
            stmt = stmt.where(table.c.conn_state.in_(list(states)))
        if uid is not None:
            stmt = stmt.where(table.c.uid == uid)
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            stmt = stmt.limit(limit)
        stmt = stmt.order_by(table.c.ts_ns, table.c.id)
        return self._stream(stmt, batch)

    # -- alerts

    def add_alerts(self, rows: Iterable[dict]) -> int:
        """Store alerts in one transaction; returns how many were new.

        A row is a dict with the ``schema.ALERT_FIELDS`` keys (the nullable ones may be absent);
        ``eve`` is the EVE object (a dict, stored as JSON text) or its JSON text. An alert already
        stored -- same time, gid, sid, endpoints, flow and text -- is skipped, so replaying the same
        captures into one store again keeps one copy. Text that is not UTF-8 (or holds NUL) is
        escaped as ``\\xNN`` rather than refused.
        """
        values = []
        addrs: dict[Any, bytes | None] = {}  # alerts repeat their addresses: parse each once
        for row in rows:
            _check_fields(row, ALERT_FIELDS, "alert")
            v = {f: row.get(f) for f in ALERT_FIELDS}
            for f in _ALERT_TEXT:
                v[f] = _db_text(v[f])
            eve = v["eve"]
            v["eve"] = _db_text(eve) if isinstance(eve, str) else _eve_text(eve if eve is not None else {})
            for f in ("src_ip", "dest_ip"):
                if v[f] not in addrs:
                    addrs[v[f]] = _addr16_or_none(v[f])
            values.append(v)
        if not values:
            return 0
        key = itemgetter(*_ALERT_KEY)
        with self._errors("write alerts"), self.engine.connect() as conn, conn.begin():
            lo, hi = min(v["ts_ns"] for v in values), max(v["ts_ns"] for v in values)
            existing = {tuple(r) for r in conn.execute(
                sa.select(*(alerts.c[k] for k in _ALERT_KEY)).where(alerts.c.ts_ns.between(lo, hi)))}
            new = [(*(v[f] for f in ALERT_FIELDS), addrs[v["src_ip"]], addrs[v["dest_ip"]])
                   for v in values if key(v) not in existing]
            if new:  # tuples, as flows are written: no per-row work in SQLAlchemy
                insert_tuples(conn, "alerts", (*ALERT_FIELDS, "src_a", "dest_a"), new)
        return len(new)

    def flow_captures(self, uids: Iterable[str]) -> dict[str, int]:
        """uid -> capture_id of the stored flows with these uids (the newest such flow's), for
        tagging alerts with the capture they came from."""
        wanted = sorted({u for u in uids if u})
        out: dict[str, int] = {}
        with self._errors("read flows"), self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                stmt = (sa.select(flows.c.uid, flows.c.capture_id)
                        .where(flows.c.uid.in_(wanted[i:i + 500]), flows.c.capture_id.is_not(None))
                        .order_by(flows.c.id))
                out.update((uid, int(cid)) for uid, cid in conn.execute(stmt))
        return out

    def query_alerts(self, *, host: str | None = None, port: int | None = None, proto: str | None = None,
                     since: int | None = None, until: int | None = None, uid: str | None = None,
                     sids: Iterable[int] | None = None, max_severity: int | None = None,
                     signature: str | None = None, kind: str | None = None, capture_id: int | None = None,
                     limit: int | None = None, batch: int = 1000) -> Iterator[dict]:
        """Alert rows matching every given filter, ordered by (ts_ns, id), streamed as dicts.

        ``host`` an IP or CIDR on either side, ``port`` either side, ``since`` inclusive and
        ``until`` exclusive (ns on ``ts_ns``), ``sids`` any of these signature ids, ``max_severity``
        this severity or a higher one (1 is the highest), ``signature`` a case-insensitive
        substring of the signature text, ``kind`` signature or behaviour. Raises ValueError for a
        bad host or limit, before touching the database.
        """
        stmt = _where_endpoints(sa.select(*(c for c in alerts.c if c.name not in ("src_a", "dest_a"))), alerts,
                                ("src_a", "dest_a", "src_port", "dest_port"), host, port, proto, since, until)
        if uid is not None:
            stmt = stmt.where(alerts.c.uid == uid)
        if sids is not None:
            stmt = stmt.where(alerts.c.signature_id.in_(list(sids)))
        if max_severity is not None:
            stmt = stmt.where(alerts.c.severity <= max_severity)
        if signature is not None:
            stmt = stmt.where(sa.func.lower(alerts.c.signature).contains(signature.lower(), autoescape=True))
        if kind is not None:
            stmt = stmt.where(alerts.c.kind == kind)
        if capture_id is not None:
            stmt = stmt.where(alerts.c.capture_id == capture_id)
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            stmt = stmt.limit(limit)
        stmt = stmt.order_by(alerts.c.ts_ns, alerts.c.id)
        return self._stream(stmt, batch, "read alerts")

    def _stream(self, stmt: sa.Select, batch: int, action: str = "read flows") -> Iterator[dict]:
        with self._errors(action), self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(stmt)
            for part in result.mappings().partitions():
                for row in part:
                    yield dict(row)

    # -- summary

    def info(self) -> dict:
        """Database name (password masked), revision, counts, time span and the captures."""
        revision = self.revision()
        out: dict[str, Any] = {
            "database": self.display, "backend": self.engine.dialect.name,
            "revision": revision, "head": self.head(),
            "capture_count": 0, "flow_count": 0, "first_ts_ns": None, "last_ts_ns": None,
            "packets": 0, "malformed": 0, "captures": [], "app_records": {}, "parser_failures": [],
        }
        if revision is None:
            return out
        with self._errors("read database"), self.engine.connect() as conn:
            f = conn.execute(sa.select(
                sa.func.count(), sa.func.min(flows.c.ts_ns),
                sa.func.max(flows.c.ts_ns + sa.func.coalesce(flows.c.duration_ns, 0)),
            )).one()
            c = conn.execute(sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(captures.c.packets), 0),
                sa.func.coalesce(sa.func.sum(captures.c.malformed), 0),
            )).one()
            caps = [dict(r) for r in conn.execute(captures.select().order_by(captures.c.id)).mappings()]
            from recorder.core.appstore import app_summary  # application-layer logs (migration 0003)

            out.update(app_summary(conn))
        out.update(flow_count=int(f[0]), first_ts_ns=_int(f[1]), last_ts_ns=_int(f[2]),
                   capture_count=int(c[0]), packets=int(c[1]), malformed=int(c[2]), captures=caps)
        return out


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _check_fields(fields: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = set(fields) - set(allowed)
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")


# What makes two alerts the same alert (add_alerts skips one already stored).
_ALERT_KEY = ("ts_ns", "gid", "signature_id", "src_ip", "src_port", "dest_ip", "dest_port", "uid", "signature")
_ALERT_TEXT = ("uid", "community_id", "src_ip", "dest_ip", "proto", "app_proto", "signature", "category",
               "action", "kind", "tactic", "technique")


def _db_text(value: Any) -> Any:
    """Text every backend stores: lone surrogates (bytes decoded with surrogateescape) and NUL,
    which PostgreSQL refuses, as ``\\xNN``."""
    if not isinstance(value, str):
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "surrogateescape" if _only_escapes(value) else "backslashreplace") \
            .decode("utf-8", "backslashreplace")
    return value.replace("\x00", "\\x00") if "\x00" in value else value


def _only_escapes(value: str) -> bool:
    return all(not 0xD800 <= ord(c) <= 0xDFFF or 0xDC80 <= ord(c) <= 0xDCFF for c in value)


def _eve_text(eve: dict) -> str:
    """An EVE object as compact JSON text; with \\u escapes only when the text is not UTF-8."""
    text = json.dumps(eve, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(eve, separators=(",", ":"), default=str)
    return text


def _addr16_or_none(ip: Any) -> bytes | None:
    try:
        return addr16(ip)
    except (ValueError, TypeError):
        return None


_FLOW_VALUES = itemgetter(*FLOW_FIELDS)


def _insert_flow_batch(conn: Connection, values: Sequence[tuple]) -> None:
    """One transaction of flow rows (tuples in FLOW_FIELDS order), through ``insert_tuples``.
    Measured for 100k rows on 2 shared cores: SQLite ~0.7 s against ~2 s for a Core
    ``insert(flows)`` with the dicts; PostgreSQL COPY ~1 s against ~2.3 s for ``executemany``."""
    with conn.begin():
        insert_tuples(conn, "flows", FLOW_FIELDS, values)


def insert_tuples(conn: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Rows as tuples in ``columns`` order into ``table``, without SQLAlchemy's per-row work: the
    DBAPI's ``executemany`` (SQLite), or ``COPY FROM STDIN`` (PostgreSQL with psycopg 3). Both take
    the values as they are (int, float, str, bytes, bool, None). Names are quoted (a column may be
    a reserved word, such as ``user``). The caller holds the transaction."""
    q = conn.dialect.identifier_preparer.quote
    target = f"{q(table)} ({', '.join(q(c) for c in columns)})"
    if conn.dialect.driver == "psycopg":
        with conn.connection.driver_connection.cursor() as cur, cur.copy(f"COPY {target} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        mark = "%s" if conn.dialect.paramstyle in ("pyformat", "format") else "?"
        conn.exec_driver_sql(f"INSERT INTO {target} VALUES ({', '.join([mark] * len(columns))})", rows)


# --- the writer process ---------------------------------------------------------------------

_STOP = None  # end of the writer queue (None pickles as itself across processes)

# The newest migration in migrations/versions (a test keeps this equal to alembic's head), so the
# common case -- a database already at head -- is checked without importing alembic.
SCHEMA_HEAD = "0009"


class FlowWriter:
    """The single writer of flow rows: a separate process fed by a bounded queue, inserting in batches.

    A process rather than a thread: turning flow columns into rows and inserting them is CPU work
    (about a third of an ingest) that, in a thread, would share the interpreter lock with the
    metering instead of running on the second core. ``put`` takes a FlowBatch or a list of rows
    (dicts with the FLOW_FIELDS keys, or tuples in that order) and blocks when the queue is full.
    An error in the writer is re-raised as StoreError by the next ``put`` or by ``close``; after
    an error the writer keeps draining the queue so a producer never blocks forever.
    """

    def __init__(self, store: Store, *, batch_rows: int = 20_000, queue_batches: int = 16) -> None:
        self.store = store
        self.rows_written = 0
        self._error: str | None = None
        self._closed = False
        ctx = multiprocessing.get_context("fork")
        self._queue = ctx.Queue(maxsize=queue_batches)
        self._reply, child_end = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_writer_main, args=(store, self._queue, child_end, batch_rows),
                                 name="wiretrail-flow-writer", daemon=True)
        self._proc.start()
        child_end.close()

    def put(self, rows: FlowBatch | list[dict] | list[tuple]) -> None:
        if self._closed:
            raise StoreError("flow writer is closed", path=self.store.display)
        self._poll()
        self._raise_error()
        if len(rows):
            self._queue.put(rows)

    def close(self) -> None:
        """Flush queued rows, stop the writer, and raise StoreError if it failed."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            while True:
                try:
                    kind, value = self._reply.recv()
                except EOFError:
                    self._error = self._error or "cannot write flows: the writer process ended unexpectedly"
                    break
                if kind == "error":
                    self._error = self._error or value
                elif kind == "done":
                    self.rows_written = value
                    break
            self._queue.close()
            self._queue.join_thread()
            self._proc.join()
        self._raise_error()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # flush what was handed over, but never mask the body's exception
            self.close()
        except StoreError:
            pass

    def _poll(self) -> None:
        while self._error is None and self._reply.poll():
            kind, value = self._reply.recv()
            if kind == "error":
                self._error = value

    def _raise_error(self) -> None:
        if self._error is not None:
            raise StoreError(self._error, path=self.store.display)


def _get_or_orphaned(q, parent: int):
    """The next queue item; the end marker if the parent died (SIGKILL leaves the queue open
    forever, and a writer waiting on it would outlive the recorder)."""
    while True:
        try:
            return q.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent:
                return _STOP


def _writer_main(store: Store, q, reply, batch_rows: int) -> None:
    """The writer process: rows from the queue into the database, in transactions of batch_rows."""
    # The parent's pooled connections came along with the fork; leave them to the parent.
    store.engine.dispose(close=False)
    # The parent decides when the writer stops (it sends the end marker after a flush): the
    # signal handlers it may have installed must not run here, and SIGINT from a terminal, sent
    # to the whole process group, must not cut the flush short.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parent = os.getppid()
    written = 0
    failed = False
    stopped = False
    pending: list = []
    try:
        with store.engine.connect() as conn:
            while True:
                item = _get_or_orphaned(q, parent)
                if item is None:
                    stopped = True
                    break
                if isinstance(item, FlowBatch):
                    item = item.rows()
                pending.extend(item)
                if len(pending) >= batch_rows or q.empty():
                    written += store.insert_flows(pending, conn)
                    pending = []
            written += store.insert_flows(pending, conn)
    except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
        failed = True
        reply.send(("error", err.message if isinstance(err, StoreError)
                    else f"cannot write flows: {_first_line(err)}"))
        while not stopped:
            stopped = q.get() is None
    reply.send(("done", written if not failed else 0))
    reply.close()


def _where_endpoints(stmt: sa.Select, table: sa.Table, cols: tuple[str, str, str, str], host: str | None,
                     port: int | None, proto: str | None, since: int | None, until: int | None) -> sa.Select:
    """The listing filters flows and alerts share: ``host`` (IP or CIDR) or ``port`` on either side
    (``cols``: the two 16-byte address columns, then the two port columns), ``proto``, and ``since``
    (inclusive) / ``until`` (exclusive) on ``ts_ns``."""
    a, b, ap, bp = (table.c[name] for name in cols)
    if host is not None:
        lo, hi = host_range(host)
        stmt = stmt.where(sa.or_(a == lo, b == lo) if lo == hi else sa.or_(a.between(lo, hi), b.between(lo, hi)))
    if port is not None:
        stmt = stmt.where(sa.or_(ap == port, bp == port))
    if proto is not None:
        stmt = stmt.where(table.c.proto == proto)
    if since is not None:
        stmt = stmt.where(table.c.ts_ns >= since)
    if until is not None:
        stmt = stmt.where(table.c.ts_ns < until)
    return stmt
