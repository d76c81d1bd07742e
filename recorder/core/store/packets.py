"""The ``packet_index`` table: where each flow key's packets lie in each capture file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recorder.core.schema import flows, packet_index
from recorder.core.store.database import Database
from recorder.core.store.sql import insert_tuples

if TYPE_CHECKING:  # numpy (packetindex) only in the commands that read or write the index
    from sqlalchemy.engine import Connection

    from recorder.core.packetindex import IndexEntry

_COLUMNS = ("capture_id", "bucket", "first_ts_ns", "last_ts_ns", "packets", "keys", "directory", "ranges")


class PacketIndexTable(Database):
    """The store's methods for the packet index."""

    def add_packet_index(self, capture_id: int, entries: Sequence[IndexEntry],
                         connection: Connection | None = None) -> None:
        """One file's index entries (``IndexBuilder.entries``), in one transaction, once per
        file; on ``connection`` when given (the flow writer's)."""
        with self.db_errors("write packet index"):
            if connection is None:
                with self.engine.connect() as conn:
                    _replace(conn, capture_id, entries)
            else:
                _replace(connection, capture_id, entries)

    def packet_index_entries(self, keys: Iterable[int], *, since: int | None = None,
                             until: int | None = None) -> list[dict]:
        """The entries of these keys (capture_id, key_hash, first_ts_ns, last_ts_ns, packets,
        bytes, ranges) whose packets overlap [since, until] (ns, inclusive), by capture and time."""
        wanted = set(keys)
        from recorder.core.indexformat import bucket_of, matching_entries

        buckets = sorted({bucket_of(k) for k in wanted})
        rows: list[dict] = []
        with self.db_errors("read packet index"), self.engine.connect() as conn:
            for i in range(0, len(buckets), 500):
                stmt = packet_index.select().where(packet_index.c.bucket.in_(buckets[i:i + 500]))
                if since is not None:
                    stmt = stmt.where(packet_index.c.last_ts_ns >= since)
                if until is not None:
                    stmt = stmt.where(packet_index.c.first_ts_ns <= until)
                rows += conn.execute(stmt).mappings()
        return matching_entries(rows, wanted, since, until)

    def next_flow_starts(self, chosen: Sequence[dict]) -> dict[str, int | None]:
        """For each flow (a flows row, by uid): when the next connection between the same
        endpoints (addresses, ports, IP protocol) starts, or None. One query per 500 addresses."""
        if not chosen:
            return {}
        c = flows.c
        from recorder.core.indexformat import next_starts

        lo = min(int(f["ts_ns"]) for f in chosen)
        addrs = sorted({bytes(f["orig_a"]) for f in chosen})
        later: list[tuple] = []
        cols = (c.orig_a, c.resp_a, c.orig_p, c.resp_p, c.ip_proto, c.ts_ns)
        with self.db_errors("read flows"), self.engine.connect() as conn:
            for i in range(0, len(addrs), 500):
                part = addrs[i:i + 500]
                for side in (c.orig_a, c.resp_a):
                    later += conn.execute(sa.select(*cols).where(side.in_(part), c.ts_ns > lo))
        return next_starts(chosen, later)

    def packet_index_size(self) -> tuple[int, int, int]:
        """(keys, packets, bytes of ranges) in the index."""
        query = sa.select(sa.func.coalesce(sa.func.sum(packet_index.c.keys), 0),
                          sa.func.coalesce(sa.func.sum(packet_index.c.packets), 0),
                          sa.func.coalesce(sa.func.sum(sa.func.length(packet_index.c.ranges)), 0))
        with self.db_errors("read packet index"), self.engine.connect() as conn:
            n, p, b = conn.execute(query).one()
            return int(n), int(p), int(b)


def _replace(conn, capture_id: int, entries: Sequence[IndexEntry]) -> None:
    with conn.begin():
        if entries:
            insert_tuples(conn, "packet_index", _COLUMNS, [(capture_id, *e) for e in entries])
