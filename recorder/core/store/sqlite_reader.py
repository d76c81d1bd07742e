"""The listings (``flows``, ``alerts``, a protocol log) and ``extract``'s reads (flows by uid,
captures, the packet index) of a SQLite store through Python's own ``sqlite3``, without importing
SQLAlchemy: an investigator runs dozens of such queries in a row, and SQLAlchemy's import was most
of each one's start-up (README, "Start-up"). The queries are the ones ``Store`` runs (``listing``),
so both give the same rows; PostgreSQL goes through ``Store``.

    reader = SqliteReader("case.db")      # never creates a file
    reader.require_schema()
    for row in reader.query_flows(host="10.0.0.0/8"):
        ...
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

from recorder.core.errors import StoreError
from recorder.core.store import listing
from recorder.core.store.head import require_head
from recorder.core.store.listing import Query, alerts_query, flows_query, last_alert_id

BUSY_TIMEOUT_S = 30.0  # as the Store's SQLITE_BUSY_TIMEOUT_MS: the recorder may be writing


def _first_line(err: BaseException) -> str:
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    return lines[0] if lines else type(err).__name__


class SqliteReader:
    """Read-only listings of one SQLite store. Raises StoreError (one line naming the file) when the
    file is missing, is not a database, or a query fails."""

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        """``read_only`` opens the file in SQLite's read-only mode (``mode=ro``)."""
        self.display = path
        if path in ("", ":memory:") or not Path(path).exists():
            raise StoreError(f"no database at {path}; run wiretrail ingest first")
        try:
            if read_only:
                self._conn = sqlite3.connect(f"file:{os.path.abspath(path)}?mode=ro", uri=True,
                                             timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            else:
                self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database: {_first_line(err)}", path=path) from err
        self._conn.row_factory = sqlite3.Row

    def revision(self) -> str | None:
        """The database's migration revision, None for an empty database."""
        try:
            if self._conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
                                  ).fetchone() is None:
                return None
            row = self._conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database: {_first_line(err)}", path=self.display) from err
        return None if row is None else row[0]

    def require_schema(self) -> None:
        """Raise StoreError unless the database holds the current schema."""
        require_head(self.revision(), self.display)

    def stream_query(self, query: Query, action: str, batch: int = 1000) -> Iterator[dict]:
        """The rows of ``query`` as dicts, fetched ``batch`` at a time."""
        try:
            cursor = self._conn.execute(query.sql, query.params)
            while part := cursor.fetchmany(batch):
                for row in part:
                    yield query.row(dict(row))
        except sqlite3.Error as err:
            raise StoreError(f"cannot {action}: {_first_line(err)}", path=self.display) from err

    def query_flows(self, *, batch: int = 1000, **filters) -> Iterator[dict]:
        """As ``Store.query_flows``."""
        return self.stream_query(flows_query(**filters), "read flows", batch)

    def query_alerts(self, *, batch: int = 1000, **filters) -> Iterator[dict]:
        """As ``Store.query_alerts``."""
        return self.stream_query(alerts_query(**filters), "read alerts", batch)

    def last_alert_id(self) -> int:
        """As ``Store.last_alert_id``."""
        return last_alert_id(self)

    def has_columns(self, columns: dict[str, str]) -> bool:
        """Whether each table named holds the columns listed (``{"flows": "uid, ts_ns"}``)."""
        try:
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not set(columns) <= tables:
                return False
            for table, names in columns.items():
                self._conn.execute(f'SELECT {names} FROM "{table}" LIMIT 0')
        except sqlite3.Error:
            return False
        return True

    def flows_with(self, column: str, values: Iterable[str], what: str) -> dict[str, dict]:
        """As ``listing.flows_with``."""
        return listing.flows_with(self, column, values, what)

    def captures(self, *, size: int | None = None) -> list[dict]:
        """As ``Store.captures``."""
        return list(self.stream_query(listing.captures_query(size=size), "read captures"))

    def packet_index_entries(self, keys: Iterable[int], *, since: int | None = None,
                             until: int | None = None) -> list[dict]:
        """As ``Store.packet_index_entries``."""
        return listing.packet_index_entries(self, keys, since=since, until=until)

    def next_flow_starts(self, chosen: Sequence[dict]) -> dict[str, int | None]:
        """As ``Store.next_flow_starts``."""
        return listing.next_flow_starts(self, chosen)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
