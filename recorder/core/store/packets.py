"""The ``packet_index`` table: where each flow key's packets lie in each capture file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recorder.core.schema import packet_index
from recorder.core.store import listing
from recorder.core.store.database import Database
from recorder.core.store.sql import insert_tuples

if TYPE_CHECKING:  # numpy (packetindex) only in the commands that read or write the index
    from sqlalchemy.engine import Connection

    from recorder.core.flow.packetindex import IndexEntry

_COLUMNS = ("capture_id", "bucket", "first_ts_ns", "last_ts_ns", "packets", "keys", "directory", "ranges")


class PacketIndexTable(Database):
    """The store's methods for the packet index."""

    def add_packet_index(self, capture_id: int, entries: Sequence[IndexEntry],
                         connection: Connection | None = None, *, replace: bool = False) -> None:
        """One file's index entries (``IndexBuilder.entries``), in one transaction, once per
        file; on ``connection`` when given (the flow writer's). ``replace``: the file may have some
        already (its meter stored what it had when capture was killed), deleted first (a scan of
        the table: for the repair of a file at start, not for every file)."""
        with self.db_errors("write packet index"):
            if connection is None:
                with self.engine.connect() as conn:
                    _replace(conn, capture_id, entries, replace)
            else:
                _replace(connection, capture_id, entries, replace)

    def packet_index_entries(self, keys: Iterable[int], *, since: int | None = None,
                             until: int | None = None) -> list[dict]:
        """As ``listing.packet_index_entries`` (which ``SqliteReader`` runs too)."""
        return listing.packet_index_entries(self, keys, since=since, until=until)

    def next_flow_starts(self, chosen: Sequence[dict]) -> dict[str, int | None]:
        """As ``listing.next_flow_starts`` (which ``SqliteReader`` runs too)."""
        return listing.next_flow_starts(self, chosen)

    def packet_index_size(self) -> tuple[int, int, int]:
        """(keys, packets, bytes of ranges) in the index."""
        query = sa.select(sa.func.coalesce(sa.func.sum(packet_index.c.keys), 0),
                          sa.func.coalesce(sa.func.sum(packet_index.c.packets), 0),
                          sa.func.coalesce(sa.func.sum(sa.func.length(packet_index.c.ranges)), 0))
        with self.db_errors("read packet index"), self.engine.connect() as conn:
            n, p, b = conn.execute(query).one()
            return int(n), int(p), int(b)


def _replace(conn, capture_id: int, entries: Sequence[IndexEntry], delete: bool) -> None:
    with conn.begin():
        if delete:
            conn.execute(sa.delete(packet_index).where(packet_index.c.capture_id == capture_id))
        if entries:
            insert_tuples(conn, "packet_index", _COLUMNS, [(capture_id, *e) for e in entries])
