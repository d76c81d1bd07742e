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
the tables share (bulk inserts), ``addresses`` the 16-byte address form, ``listing`` the
listings' and extract's queries as SQL text, which ``sqlite_reader`` runs on a SQLite file
without SQLAlchemy.

The names below are loaded on first use (PEP 562), so ``recorder.core.store.sqlite_reader`` and
the other pure modules are imported without SQLAlchemy (a listing's start-up; README, "Start-up").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# name -> the module defining it, imported on first use
_WHERE = {
    "Store": "recorder.core.store.store",
    "FlowWriter": "recorder.core.store.flows",
    "DEFAULT_DB": "recorder.core.store.database",
    "SQLITE_BUSY_TIMEOUT_MS": "recorder.core.store.database",
    "MIGRATIONS_DIR": "recorder.core.store.migrate",
    "SCHEMA_HEAD": "recorder.core.store.head",
    "clean_text": "recorder.core.store.rows",
    "IPAddress": "recorder.core.store.addresses",
    "addr16": "recorder.core.store.addresses",
    "host_range": "recorder.core.store.addresses",
    "insert_tuples": "recorder.core.store.sql",
}

__all__ = ["DEFAULT_DB", "MIGRATIONS_DIR", "SCHEMA_HEAD", "SQLITE_BUSY_TIMEOUT_MS", "FlowWriter", "IPAddress",
           "Store", "addr16", "clean_text", "host_range", "insert_tuples"]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)


if TYPE_CHECKING:  # for type checkers and readers: the names, as plain imports
    from recorder.core.store.addresses import IPAddress, addr16, host_range
    from recorder.core.store.database import DEFAULT_DB, SQLITE_BUSY_TIMEOUT_MS
    from recorder.core.store.flows import FlowWriter
    from recorder.core.store.head import SCHEMA_HEAD
    from recorder.core.store.migrate import MIGRATIONS_DIR
    from recorder.core.store.rows import clean_text
    from recorder.core.store.sql import insert_tuples
    from recorder.core.store.store import Store
