"""What the store's tables share: the 16-byte address form and its ranges, the endpoint filters of
the listings, and the fast bulk insert of tuples.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def addr16_or_none(ip: Any) -> bytes | None:
    """``addr16``, or None for what is not an address."""
    try:
        return addr16(ip)
    except (ValueError, TypeError):
        return None


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


def where_endpoints(stmt: sa.Select, table: sa.Table, cols: tuple[str, str, str, str], host: str | None,
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
