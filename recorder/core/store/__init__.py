"""The store: SQLite (WAL) by default, PostgreSQL for many sensors, one schema for both.

    store = Store("case.db")              # or "postgresql://user:pw@host/db"
    store.ensure_schema()                 # migrates when the database is not at head
    cid = store.add_capture(path=..., sha256=..., format="pcap", ...)
    with store.flow_writer() as w:        # the one writer (a process) of this database's flows
        w.put(rows)                       # lists of dicts with exactly schema.FLOW_FIELDS keys
    for row in store.query_flows(host="10.0.0.0/8", port=53):
        ...

Every database failure (cannot open, permission, not a database, connection refused, constraint
violated) is raised as ``StoreError`` whose ``str`` is one line naming the database.

The package follows the store's seams: ``database`` (the engine and its errors), ``migrate`` (the
schema's revision, ``SCHEMA_HEAD``), ``captures``, ``flows`` (with the flow writer), ``alerts``,
``notify`` (the notification queue), ``summary`` (``info``), and the protocol records: ``rows`` (record <-> row, ``clean_text``),
``records`` (writing them during an ingest) and ``logs`` (reading them back). ``sql`` holds what
the tables share (addresses, endpoint filters, bulk inserts).
"""

from __future__ import annotations

from recorder.core.store.alerts import AlertTable
from recorder.core.store.captures import CaptureTable
from recorder.core.store.database import DEFAULT_DB, SQLITE_BUSY_TIMEOUT_MS
from recorder.core.store.flows import FlowTable, FlowWriter
from recorder.core.store.migrate import MIGRATIONS_DIR, SCHEMA_HEAD
from recorder.core.store.notify import NotifyQueue
from recorder.core.store.packets import PacketIndexTable
from recorder.core.store.rows import clean_text
from recorder.core.store.sql import IPAddress, addr16, host_range, insert_tuples
from recorder.core.store.summary import Summary


class Store(CaptureTable, FlowTable, AlertTable, NotifyQueue, PacketIndexTable, Summary):
    """One Wiretrail database. ``db`` is a file path (SQLite) or a SQLAlchemy URL.

    ``create=False`` refuses to create a missing SQLite file (for read-only commands).
    The object is safe to share between threads; ``close()`` disposes of the connection pool.
    """


__all__ = ["DEFAULT_DB", "MIGRATIONS_DIR", "SCHEMA_HEAD", "SQLITE_BUSY_TIMEOUT_MS", "FlowWriter", "IPAddress",
           "Store", "addr16", "clean_text", "host_range", "insert_tuples"]
