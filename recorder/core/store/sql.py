"""What the store's tables share in SQLAlchemy terms: an address column in a CIDR, and the fast bulk
insert of tuples. (The 16-byte address form itself is ``addresses``.)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.store.addresses import IPAddress, addr16, addr16_or_none, host_range


def between(col: sa.ColumnElement, host: str) -> sa.ColumnElement:
    """``col`` (a 16-byte address column) in the IP or CIDR ``host``."""
    lo, hi = host_range(host)
    return col == lo if lo == hi else col.between(lo, hi)


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


def fast_sqlite_binding() -> None:
    """Bind None, bytes and bool without the sqlite3 module's adaptation search, in a writer
    process. The module binds int, float and str as they are, but for any other value it looks
    for an adapter, then for ``__adapt__`` and ``__conform__``, before binding the value itself:
    about 1 us per None, most of a protocol row's insert (a row has tens of unset columns).
    An adapter registered for the type is found first; these return the value as the module
    would bind it anyway (None as NULL, bytes as a BLOB, a bool as the integer 0 or 1), so only
    the time changes (measured: README, "Per-record work out of the parsers' hot path"). The
    registry is the process's: called in the store's writer processes, which bind only our rows."""
    import sqlite3

    sqlite3.register_adapter(type(None), {}.get)  # {}.get(None) is None: a C call, no search
    sqlite3.register_adapter(bytes, bytes)  # bytes(b) is b itself
    sqlite3.register_adapter(bool, int)


__all__ = ["IPAddress", "addr16", "addr16_or_none", "between", "fast_sqlite_binding", "host_range", "insert_tuples"]
