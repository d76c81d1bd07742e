"""A lean read of a SQLite store for ``extract`` by uid, Community ID, host, port, protocol and
time: the standard library's sqlite3 rather than SQLAlchemy and the schema module (whose import,
with every parser's log tables, was most of extract's start-up: ``python -X importtime``).

It offers the few store methods ``extract.read_packets`` and ``selection.by_listing`` use, with
the same queries as ``recorder.core.store`` (the flows listing is ``store.listing``'s very SQL)
and the same post-processing (``packetindex.matching_entries``, ``next_starts``). Its reads of
the file are declared random to the kernel (``random_reads``): a lookup touches a few pages
here and there, and the kernel's read-ahead (8 MB on a virtual disk) would otherwise read most
of the file for them. It is tried only for a plain SQLite file; when the file is not a store it can
read (no such table or column, not a database), ``open_lite`` returns None and the command
takes the usual path, which says what is wrong.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence

from recorder.core.errors import WiretrailError
from recorder.core.indexformat import bucket_of, matching_entries, next_starts
from recorder.core.store.listing import flows_query

_NEEDED = {"flows", "captures", "packet_index", "alembic_version"}


class LiteStore:
    """A read-only sqlite3 connection to a store file."""

    def __init__(self, con: sqlite3.Connection, path: str) -> None:
        self._con = con
        self.display = path

    def _rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        cur = self._con.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur]

    def flows_where(self, column: str, values: Iterable[str], what: str) -> list[dict]:
        """The flow rows whose ``column`` (uid or community_id) is each value, oldest first;
        WiretrailError naming the first value no flow has."""
        chosen: dict[str, dict] = {}
        for v in values:
            rows = self._rows(f"SELECT * FROM flows WHERE {column} = ?", (v,))
            if not rows:
                raise WiretrailError(f"no flow with {what} {v}", path=self.display)
            chosen.update((r["uid"], r) for r in rows)
        return sorted(chosen.values(), key=lambda r: (r["ts_ns"], r["uid"]))

    def query_flows(self, **filters) -> list[dict]:
        """As ``Store.query_flows`` (host, port, proto, since, until): ``listing.flows_query``."""
        query = flows_query(**filters)
        return [query.row(r) for r in self._rows(query.sql, query.params)]

    def captures(self) -> list[dict]:
        return self._rows("SELECT * FROM captures ORDER BY id")

    def packet_index_entries(self, keys: Iterable[int], *, since: int | None = None,
                             until: int | None = None) -> list[dict]:
        wanted = set(keys)
        buckets = sorted({bucket_of(k) for k in wanted})
        rows: list[dict] = []
        for i in range(0, len(buckets), 500):
            part = buckets[i:i + 500]
            sql = f"SELECT * FROM packet_index WHERE bucket IN ({','.join('?' * len(part))})"
            params: list[int] = list(part)
            if since is not None:
                sql += " AND last_ts_ns >= ?"
                params.append(since)
            if until is not None:
                sql += " AND first_ts_ns <= ?"
                params.append(until)
            rows += self._rows(sql, params)
        return matching_entries(rows, wanted, since, until)

    def next_flow_starts(self, chosen: Sequence[dict]) -> dict[str, int | None]:
        if not chosen:
            return {}
        lo = min(int(f["ts_ns"]) for f in chosen)
        addrs = sorted({bytes(f["orig_a"]) for f in chosen})
        later: list[tuple] = []
        for i in range(0, len(addrs), 500):
            part = addrs[i:i + 500]
            marks = ",".join("?" * len(part))
            for side in ("orig_a", "resp_a"):
                later += self._con.execute(f"SELECT orig_a, resp_a, orig_p, resp_p, ip_proto, ts_ns FROM flows "
                                           f"WHERE {side} IN ({marks}) AND ts_ns > ?", (*part, lo))
        return next_starts(chosen, later)

    def close(self) -> None:
        self._con.close()


def open_lite(db: str) -> LiteStore | None:
    """The store file ``db`` opened read-only with sqlite3, or None when it is a database URL,
    not an existing file, or not a store this reader knows."""
    if "://" in db or not os.path.isfile(db):
        return None
    try:
        con = sqlite3.connect(f"file:{os.path.abspath(db)}?mode=ro", uri=True)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _NEEDED <= tables:
            con.close()
            return None
        con.execute("SELECT uid, community_id, ip_proto, orig_a, resp_a, orig_p, resp_p, ts_ns, capture_id "
                    "FROM flows LIMIT 0")
        con.execute("SELECT capture_id, bucket, first_ts_ns, last_ts_ns, directory, ranges FROM packet_index LIMIT 0")
        con.execute("SELECT id, path, format, bytes, deleted_at, deleted_reason FROM captures LIMIT 0")
    except sqlite3.Error:
        return None
    random_reads(os.path.realpath(db))
    return LiteStore(con, db)


def random_reads(path: str) -> None:
    """Tell the kernel that this process's open descriptors of ``path`` (sqlite3's, found in
    /proc/self/fd) are read at random places: no read-ahead (``posix_fadvise``, per descriptor).
    Nothing where that is not available."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                advise(int(fd), 0, 0, os.POSIX_FADV_RANDOM)
        except OSError:
            continue
