"""The listings' queries (flows, alerts, a protocol log) and extract's reads (flows by uid or
Community ID, captures, packet-index rows, later connections) as SQL text with named parameters.

One text serves both databases and both ways of running it: ``Store`` runs it through SQLAlchemy
(SQLite or PostgreSQL), and ``SqliteReader`` through Python's own ``sqlite3`` for the read
commands an investigator runs dozens of times in a row, which then never import SQLAlchemy (its
import was most of their start-up: README, "Start-up"). Pure: this module imports no database
library, and the SQL is the portable subset both databases run the same way.

    q = flows_query(host="10.0.0.0/8", port=53, limit=10)
    for row in store.stream_query(q, "read flows"):   # dicts, booleans as bool
        ...
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recorder.core.errors import WiretrailError
from recorder.core.store.addresses import host_range

# The recorder keeps, under its stream's name plus this, the TCP connections already closed but
# waiting out the close delay (recorder.live_flows), for live detection; ``flows --open`` skips them.
CLOSED_STREAM_SUFFIX = " closed"

# The flows' and open flows' boolean columns; ``capture_drops`` is computed by ``flows_query``.
_FLOW_BOOLS = frozenset({"local_orig", "local_resp", "capture_drops"})
_CAPTURE_BOOLS = frozenset({"repaired"})
_CHUNK = 500  # values per IN (...) list: far below SQLite's and PostgreSQL's parameter limits
# Flows that lasted longer than this are also in a partial index by start (schema: ix_flows_long,
# migration 0017), so "active at or after T" is two index ranges: started at most this long before
# T, or long. The literal must be the index's own condition, written the same way, for SQLite and
# PostgreSQL to use the partial index.
LONG_FLOW_NS = 3600 * 10**9
LONG_FLOW_SQL = "t.duration_ns > 3600000000000"


@dataclass(frozen=True, slots=True)
class Query:
    """A SELECT as text with ``:name`` parameters, and how to read its rows back: the columns that
    hold booleans (SQLite stores 0/1) and the columns read but not returned."""

    sql: str
    params: dict[str, Any]
    bools: frozenset[str] = frozenset()
    hidden: frozenset[str] = frozenset()

    def row(self, row: dict) -> dict:
        """A fetched row as the listing's dict."""
        for name in self.hidden:
            row.pop(name, None)
        for name in self.bools:
            value = row.get(name)
            if value is not None:
                row[name] = bool(value)
        return row


class Streams(Protocol):
    """What runs a Query: ``Store`` (SQLAlchemy) or ``SqliteReader`` (sqlite3)."""

    display: str  # the database, as errors name it

    def stream_query(self, query: Query, action: str, batch: int = 1000) -> Iterator[dict]: ...


@dataclass(slots=True)
class _Where:
    """The WHERE clauses of one query and their parameters (``p0``, ``p1``, ...)."""

    clauses: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    def add(self, clause: str) -> None:
        self.clauses.append(clause)

    def any_of(self, column: str, values: Iterable) -> None:
        values = list(values)
        self.add(f"{column} IN ({', '.join(self.param(v) for v in values)})" if values else "1 = 0")

    def host(self, columns: tuple[str, ...], host: str) -> None:
        """An address column (16 bytes) of ``columns`` in the IP or CIDR ``host``; ValueError if bad."""
        lo, hi = host_range(host)
        if lo == hi:
            p = self.param(lo)
            self.add("(" + " OR ".join(f"{c} = {p}" for c in columns) + ")")
        else:
            a, b = self.param(lo), self.param(hi)
            self.add("(" + " OR ".join(f"{c} BETWEEN {a} AND {b}" for c in columns) + ")")

    def endpoints(self, cols: tuple[str, str, str, str], host: str | None, port: int | None,
                  proto: str | None, since: int | None, until: int | None) -> None:
        """The filters flows and alerts share: ``host`` or ``port`` on either side (``cols``: the two
        16-byte address columns, then the two ports), ``proto``, ``since`` (inclusive) and ``until``
        (exclusive) on ``ts_ns``."""
        if host is not None:
            self.host(cols[:2], host)
        if port is not None:
            p = self.param(port)
            self.add(f"({cols[2]} = {p} OR {cols[3]} = {p})")
        if proto is not None:
            self.add(f"t.proto = {self.param(proto)}")
        self.time(since, until)

    def time(self, since: int | None, until: int | None) -> None:
        if since is not None:
            self.add(f"t.ts_ns >= {self.param(since)}")
        if until is not None:
            self.add(f"t.ts_ns < {self.param(until)}")

    def active(self, since: int, until: int | None) -> None:
        """Flows still going at or after ``since`` (their last packet at or after it) and started
        before ``until``, found by two bounded index ranges whatever their length: those started
        from LONG_FLOW_NS before ``since`` on (the start index), and the long ones started before
        that (their partial index). Each range carries both bounds, or the planner prefers the
        start index alone for the ORDER BY and reads every flow before ``until``."""
        lo, at = self.param(since - LONG_FLOW_NS), self.param(since)
        before = f" AND t.ts_ns < {self.param(until)}" if until is not None else ""
        end = "t.ts_ns + coalesce(t.duration_ns, 0)"
        self.add(f"((t.ts_ns >= {lo}{before} AND {end} >= {at}) OR "
                 f"({LONG_FLOW_SQL} AND t.ts_ns < {lo} AND {end} >= {at}))")

    def select(self, head: str, order: str, limit: int | None, **read) -> Query:
        sql = head + (" WHERE " + " AND ".join(self.clauses) if self.clauses else "") + f" ORDER BY {order}"
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, not {limit}")
            sql += f" LIMIT {self.param(limit)}"
        return Query(sql, self.params, **read)


def flows_query(*, host: str | None = None, port: int | None = None, proto: str | None = None,
                since: int | None = None, until: int | None = None, states: Iterable[str] | None = None,
                uid: str | None = None, limit: int | None = None, open_only: bool = False,
                active_since: int | None = None) -> Query:
    """Flows (or, with ``open_only``, the recorder's interim records of open connections) matching
    every filter, ordered by (ts_ns, id), each with ``capture_drops``: true when the recorder lost
    packets (kernel or interface drops) while a file of the flow's sensor was open during the flow.
    ``since``/``until`` bound the start; ``active_since`` takes the flows whose last packet is at or
    after it, however long before they started. Raises ValueError for a bad host or limit."""
    w = _Where()
    recorder = w.param("recorder")
    drops = ("EXISTS (SELECT 1 FROM captures AS lossy WHERE lossy.origin = " + recorder +
             " AND coalesce(lossy.kernel_drops, 0) + coalesce(lossy.iface_drops, 0) > 0"
             " AND lossy.ingested_at <= t.ts_ns + coalesce(t.duration_ns, 0)"
             " AND coalesce(lossy.sealed_at, lossy.last_ts_ns) >= t.ts_ns"
             " AND lossy.sensor = (SELECT own.sensor FROM captures AS own WHERE own.id = t.capture_id))")
    if active_since is None:
        w.endpoints(("t.orig_a", "t.resp_a", "t.orig_p", "t.resp_p"), host, port, proto, since, until)
    else:
        w.endpoints(("t.orig_a", "t.resp_a", "t.orig_p", "t.resp_p"), host, port, proto, since, None)
        w.active(active_since, until)
    if states is not None:
        w.any_of("t.conn_state", states)
    if uid is not None:
        w.add(f"t.uid = {w.param(uid)}")
    if open_only:  # not the closed connections kept for live detection
        w.add(f"t.stream NOT LIKE {w.param('%' + CLOSED_STREAM_SUFFIX)}")
    table = "open_flows" if open_only else "flows"
    # with active_since, the order by an expression (+ts_ns) so the planner takes the two ranges
    # instead of walking the start index for its order (which reads every flow before until)
    order = "+t.ts_ns, t.id" if active_since is not None else "t.ts_ns, t.id"
    return w.select(f"SELECT t.*, {drops} AS capture_drops FROM {table} AS t", order, limit, bools=_FLOW_BOOLS)


def alerts_query(*, host: str | None = None, port: int | None = None, proto: str | None = None,
                 since: int | None = None, until: int | None = None, uid: str | None = None,
                 sids: Iterable[int] | None = None, max_severity: int | None = None,
                 signature: str | None = None, kind: str | None = None, capture_id: int | None = None,
                 limit: int | None = None, after_id: int | None = None) -> Query:
    """Alerts matching every filter (see ``Store.query_alerts``), ordered by (ts_ns, id), or by id
    with ``after_id``. Raises ValueError for a bad host or limit."""
    w = _Where()
    w.endpoints(("t.src_a", "t.dest_a", "t.src_port", "t.dest_port"), host, port, proto, since, until)
    if uid is not None:
        w.add(f"t.uid = {w.param(uid)}")
    if sids is not None:
        w.any_of("t.signature_id", sids)
    if max_severity is not None:
        w.add(f"t.severity <= {w.param(max_severity)}")
    if signature is not None:
        pattern = signature.lower().replace("/", "//").replace("%", "/%").replace("_", "/_")
        w.add(f"lower(t.signature) LIKE {w.param('%' + pattern + '%')} ESCAPE '/'")
    if kind is not None:
        w.add(f"t.kind = {w.param(kind)}")
    if capture_id is not None:
        w.add(f"t.capture_id = {w.param(capture_id)}")
    if after_id is not None:
        w.add(f"t.id > {w.param(after_id)}")
    order = "t.id" if after_id is not None else "t.ts_ns, t.id"
    return w.select("SELECT t.* FROM alerts AS t", order, limit, hidden=frozenset({"src_a", "dest_a"}))


def last_alert_query() -> Query:
    """The id of the newest stored alert (0 when there is none), as the row ``{"last": id}``."""
    return Query("SELECT coalesce(max(id), 0) AS last FROM alerts", {})


def last_alert_id(store: Streams) -> int:
    """The id of the newest stored alert in ``store`` (a Store or a SqliteReader), 0 when none."""
    return int(next(iter(store.stream_query(last_alert_query(), "read alerts")))["last"])


def log_query(name: str, *, host: str | None = None, port: int | None = None, since: int | None = None,
              until: int | None = None, uid: str | None = None, limit: int | None = None) -> Query:
    """The rows of protocol log ``name`` matching every filter, ordered by (ts_ns, id): ``host`` on
    either endpoint (``names``: the address). Raises ValueError for an unknown log, a filter the
    log has no column for, a bad host or limit."""
    from recorder.core.apps.records import CONN_LOGS, LOGS, app_column_name

    if name not in LOGS:
        raise ValueError(f"unknown log {name!r}")
    conn_log = name in CONN_LOGS
    w = _Where()
    if host is not None:
        w.host(("t.orig_a", "t.resp_a") if conn_log else ("t.addr_a",), host)
    if port is not None:
        if not conn_log:
            raise ValueError(f"the {name} log has no ports")
        p = w.param(port)
        w.add(f"(t.orig_p = {p} OR t.resp_p = {p})")
    w.time(since, until)
    if uid is not None:
        if not conn_log:
            raise ValueError(f"the {name} log has no uid")
        w.add(f"t.uid = {w.param(uid)}")
    bools = frozenset(app_column_name(f, z) for f, z in LOGS[name] if z == "bool")
    return w.select(f'SELECT t.* FROM "{name}" AS t', "t.ts_ns, t.id", limit, bools=bools)


def query_log(store: Streams, name: str, *, host: str | None = None, port: int | None = None,
              since: int | None = None, until: int | None = None, uid: str | None = None,
              limit: int | None = None, batch: int = 1000) -> Iterator[dict]:
    """Records of log ``name`` as Zeek records (``id.orig_h``, ...), ordered by (ts, id), matching
    every filter given; ``store`` a Store or a SqliteReader. Raises ValueError for an unknown log,
    a bad host or limit, before touching the database."""
    from recorder.core.store.rows import from_row

    query = log_query(name, host=host, port=port, since=since, until=until, uid=uid, limit=limit)
    return (from_row(name, row) for row in store.stream_query(query, f"read {name}", batch))


def flows_with_query(column: str, value: str) -> Query:
    """The flows whose ``column`` (``uid`` or ``community_id``) is ``value``."""
    if column not in ("uid", "community_id"):
        raise ValueError(f"flows are not chosen by {column!r}")
    w = _Where()
    w.add(f"t.{column} = {w.param(value)}")
    return w.select("SELECT t.* FROM flows AS t", "t.id", None, bools=_FLOW_BOOLS)


def flows_with(store: Streams, column: str, values: Iterable[str], what: str) -> dict[str, dict]:
    """The flow rows, by uid, whose ``column`` (``uid`` or ``community_id``) is one of ``values``;
    WiretrailError naming (as ``what``) the first value no flow has."""
    chosen: dict[str, dict] = {}
    for value in values:
        rows = list(store.stream_query(flows_with_query(column, value), "read flows"))
        if not rows:
            raise WiretrailError(f"no flow with {what} {value}", path=store.display)
        chosen.update((r["uid"], r) for r in rows)
    return chosen


def captures_query(*, size: int | None = None) -> Query:
    """Captures, oldest first; with ``size``, only files of that many bytes."""
    w = _Where()
    if size is not None:
        w.add(f"t.bytes = {w.param(size)}")
    return w.select("SELECT t.* FROM captures AS t", "t.id", None, bools=_CAPTURE_BOOLS)


def packet_index_query(buckets: Iterable[int], *, since: int | None = None, until: int | None = None) -> Query:
    """The packet-index rows of these buckets whose packets overlap [since, until] (ns, inclusive)."""
    w = _Where()
    w.any_of("t.bucket", buckets)
    if since is not None:
        w.add(f"t.last_ts_ns >= {w.param(since)}")
    if until is not None:
        w.add(f"t.first_ts_ns <= {w.param(until)}")
    return Query("SELECT t.* FROM packet_index AS t WHERE " + " AND ".join(w.clauses), w.params)


def packet_index_entries(store: Streams, keys: Iterable[int], *, since: int | None = None,
                         until: int | None = None) -> list[dict]:
    """The entries of these flow keys (capture_id, key_hash, first_ts_ns, last_ts_ns, packets,
    bytes, ranges) whose packets overlap [since, until] (ns, inclusive), by capture and time."""
    from recorder.core.flow.indexformat import bucket_of, matching_entries

    wanted = set(keys)
    buckets = sorted({bucket_of(k) for k in wanted})
    rows: list[dict] = []
    for i in range(0, len(buckets), _CHUNK):
        rows += store.stream_query(packet_index_query(buckets[i:i + _CHUNK], since=since, until=until),
                                   "read packet index")
    return matching_entries(rows, wanted, since, until)


def later_flows_query(side: str, addrs: Iterable[bytes], after_ns: int) -> Query:
    """(orig_a, resp_a, orig_p, resp_p, ip_proto, ts_ns) of the flows that start after ``after_ns``
    with their ``side`` address (``orig_a`` or ``resp_a``) among ``addrs``."""
    if side not in ("orig_a", "resp_a"):
        raise ValueError(f"no address column {side!r}")
    w = _Where()
    w.any_of(f"t.{side}", addrs)
    w.add(f"t.ts_ns > {w.param(after_ns)}")
    return Query("SELECT t.orig_a, t.resp_a, t.orig_p, t.resp_p, t.ip_proto, t.ts_ns FROM flows AS t WHERE "
                 + " AND ".join(w.clauses), w.params)


def next_flow_starts(store: Streams, chosen: Sequence[dict]) -> dict[str, int | None]:
    """For each flow (a flows row, by uid): when the next connection between the same endpoints
    (addresses, ports, IP protocol) starts, or None. Two queries per 500 addresses."""
    if not chosen:
        return {}
    from recorder.core.flow.indexformat import next_starts

    lo = min(int(f["ts_ns"]) for f in chosen)
    addrs = sorted({bytes(f["orig_a"]) for f in chosen})
    later: list[tuple] = []
    for i in range(0, len(addrs), _CHUNK):
        for side in ("orig_a", "resp_a"):
            later += (tuple(r.values()) for r in
                      store.stream_query(later_flows_query(side, addrs[i:i + _CHUNK], lo), "read flows"))
    return next_starts(chosen, later)
