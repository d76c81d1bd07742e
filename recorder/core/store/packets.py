"""The ``packet_index`` table: where each flow key's packets lie in each capture file."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from recorder.core.packetindex import IndexEntry
from recorder.core.schema import flows, packet_index
from recorder.core.store.database import Database
from recorder.core.store.sql import insert_tuples

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

_COLUMNS = ("capture_id", "key_hash", "first_ts_ns", "last_ts_ns", "packets", "bytes", "ranges")


class PacketIndexTable(Database):
    """The store's methods for the packet index."""

    def add_packet_index(self, capture_id: int, entries: Sequence[IndexEntry],
                         connection: Connection | None = None) -> None:
        """One file's index entries, in one transaction (replacing any it had); on ``connection``
        when given (the flow writer's)."""
        with self.db_errors("write packet index"):
            if connection is None:
                with self.engine.connect() as conn:
                    _replace(conn, capture_id, entries)
            else:
                _replace(connection, capture_id, entries)

    def packet_index_entries(self, keys: Iterable[int], *, since: int | None = None,
                             until: int | None = None) -> list[dict]:
        """The entries of these keys whose packets overlap [since, until] (ns, inclusive), by
        capture and time."""
        keys = sorted(set(keys))
        out: list[dict] = []
        with self.db_errors("read packet index"), self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                stmt = packet_index.select().where(packet_index.c.key_hash.in_(keys[i:i + 500]))
                if since is not None:
                    stmt = stmt.where(packet_index.c.last_ts_ns >= since)
                if until is not None:
                    stmt = stmt.where(packet_index.c.first_ts_ns <= until)
                out.extend(dict(r) for r in conn.execute(stmt).mappings())
        out.sort(key=lambda r: (r["capture_id"], r["first_ts_ns"]))
        return out

    def next_flow_start(self, flow: dict) -> int | None:
        """When the next connection between the same endpoints (addresses, ports, protocol) as
        ``flow`` (a flows row) starts, or None."""
        a, b, ap, bp = flow["orig_a"], flow["resp_a"], flow["orig_p"], flow["resp_p"]
        c = flows.c
        same = sa.or_(sa.and_(c.orig_a == a, c.resp_a == b, c.orig_p == ap, c.resp_p == bp),
                      sa.and_(c.orig_a == b, c.resp_a == a, c.orig_p == bp, c.resp_p == ap))
        query = sa.select(sa.func.min(c.ts_ns)).where(same, c.ip_proto == flow["ip_proto"], c.ts_ns > flow["ts_ns"])
        with self.db_errors("read flows"), self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def packet_index_size(self) -> tuple[int, int, int]:
        """(entries, packets, bytes of ranges) in the index."""
        query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(packet_index.c.packets), 0),
                          sa.func.coalesce(sa.func.sum(sa.func.length(packet_index.c.ranges)), 0))
        with self.db_errors("read packet index"), self.engine.connect() as conn:
            n, p, b = conn.execute(query).one()
            return int(n), int(p), int(b)


def _replace(conn, capture_id: int, entries: Sequence[IndexEntry]) -> None:
    with conn.begin():
        conn.execute(packet_index.delete().where(packet_index.c.capture_id == capture_id))
        if entries:
            insert_tuples(conn, "packet_index", _COLUMNS,
                          [(capture_id, e.key, e.first_ts_ns, e.last_ts_ns, e.packets, e.bytes, e.ranges)
                           for e in entries])
