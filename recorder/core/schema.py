"""The database schema: SQLAlchemy 2 Core tables, the one source of truth for the migrations.

Times are integers: nanoseconds since the epoch, UTC (``*_ts_ns``, ``ts_ns``, ``ingested_at``),
durations in nanoseconds (``duration_ns``). Addresses are kept twice: as text for display
(``orig_h``) and as 16 bytes (``orig_a``, IPv4 as the IPv4-mapped ``::ffff:a.b.c.d``), so a CIDR
is a ``BETWEEN`` on a blob (SQLite) or bytea (PostgreSQL) that an index serves.

A schema change means: edit this module, add a migration under ``migrations/versions`` and keep
``tests/core/test_store.py::test_schema_matches_migrations`` green.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

from recorder.core.apps.records import CONN_LOGS, LOGS, app_column_name, column_name

# A 64-bit autoincrement key; on SQLite only INTEGER PRIMARY KEY is the rowid alias.
BigId = BigInteger().with_variant(Integer, "sqlite")

# Constraint names the same on every backend, so migrations can name them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

captures = Table(
    "captures", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=True, unique=True),  # set when the file is fully read
    Column("format", String(16), nullable=False),  # pcap, pcapng, pcap.gz, pcapng.gz, ...
    Column("link_types", Text, nullable=False, default=""),  # comma-separated LINKTYPE ints
    Column("first_ts_ns", BigInteger, nullable=True),
    Column("last_ts_ns", BigInteger, nullable=True),
    Column("packets", BigInteger, nullable=False, server_default="0"),
    Column("bytes", BigInteger, nullable=False, server_default="0"),  # file size on disk
    Column("malformed", BigInteger, nullable=False, server_default="0"),
    Column("ingested_at", BigInteger, nullable=False),  # ns since the epoch, UTC
    Column("sensor", Text, nullable=True),
    # Sealed by the recorder (migration 0002); NULL for files an investigator ingested.
    Column("origin", String(16), nullable=True),
    Column("interface", Text, nullable=True),
    Column("kernel_drops", BigInteger, nullable=True),
    Column("iface_drops", BigInteger, nullable=True),
    Column("sealed_at", BigInteger, nullable=True),
    Column("repaired", Boolean(create_constraint=False), nullable=True),
    Column("prev_chain", String(64), nullable=True),
    Column("chain", String(64), nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    Column("deleted_reason", Text, nullable=True),
    # Damaged records skipped by the reader (migration 0010): "start-end ..." byte offsets, end exclusive.
    Column("skipped_ranges", Text, nullable=True),
    Column("skipped_bytes", BigInteger, nullable=True),
    # Packets the live signature engine inspected as they passed (migration 0016); NULL: not known.
    Column("inspected_live", BigInteger, nullable=True),
    Index("ix_captures_first_ts_ns", "first_ts_ns"),
)

flows = Table(
    "flows", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("uid", String(24), nullable=False),
    Column("capture_id", BigId, ForeignKey("captures.id"), nullable=True),
    Column("file_offset", BigInteger, nullable=True),  # first packet's record offset in the capture
    Column("ts_ns", BigInteger, nullable=False),
    Column("duration_ns", BigInteger, nullable=True),
    Column("orig_h", String(45), nullable=False),
    Column("orig_p", Integer, nullable=False),
    Column("resp_h", String(45), nullable=False),
    Column("resp_p", Integer, nullable=False),
    Column("orig_a", LargeBinary(16), nullable=False),
    Column("resp_a", LargeBinary(16), nullable=False),
    Column("proto", String(24), nullable=False),  # tcp, udp, icmp, unknown_transport (17 chars)
    Column("ip_proto", Integer, nullable=True),
    Column("service", Text, nullable=True),
    Column("orig_bytes", BigInteger, nullable=True),
    Column("resp_bytes", BigInteger, nullable=True),
    Column("conn_state", String(8), nullable=True),
    Column("local_orig", Boolean(create_constraint=False), nullable=True),
    Column("local_resp", Boolean(create_constraint=False), nullable=True),
    Column("missed_bytes", BigInteger, nullable=True),
    Column("history", Text, nullable=True),
    Column("orig_pkts", BigInteger, nullable=True),
    Column("orig_ip_bytes", BigInteger, nullable=True),
    Column("resp_pkts", BigInteger, nullable=True),
    Column("resp_ip_bytes", BigInteger, nullable=True),
    Column("tunnel_parents", Text, nullable=True),  # comma-separated uids
    Column("community_id", String(64), nullable=True),
    Index(None, "ts_ns"),
    Index(None, "orig_a"),
    Index(None, "resp_a"),
    Index(None, "orig_p"),
    Index(None, "resp_p"),
    Index(None, "uid"),
    Index(None, "conn_state"),
    # The flows that lasted over an hour, by start (migration 0017): with the start index, "still
    # going at T" is two index ranges (store.listing.active_since), however long ago a flow began.
    Index("ix_flows_long", "ts_ns", sqlite_where=text("duration_ns > 3600000000000"),
          postgresql_where=text("duration_ns > 3600000000000")),
)

# Where each flow key's packets lie in a capture file (migration 0011; recorder.core.flow.packetindex):
# one row per (bucket of keys, file): a directory of its keys and their record byte ranges as
# delta-encoded varints. Clustered on (bucket, capture) (SQLite: WITHOUT ROWID).
packet_index = Table(
    "packet_index", metadata,
    Column("bucket", Integer, primary_key=True, autoincrement=False),
    Column("capture_id", BigId, ForeignKey("captures.id"), primary_key=True, autoincrement=False),
    Column("first_ts_ns", BigInteger, nullable=False),
    Column("last_ts_ns", BigInteger, nullable=False),
    Column("packets", BigInteger, nullable=False),
    Column("keys", Integer, nullable=False),
    Column("directory", LargeBinary, nullable=False),
    Column("ranges", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

# The keys of every dict the flow meter hands the store: all flow columns except ``id``.
FLOW_FIELDS: tuple[str, ...] = tuple(c.name for c in flows.columns if c.name != "id")

# Interim records of connections still open (migration 0002): the recorder replaces its
# stream's rows at every rotation and removes them when it stops (the flows are then final).
open_flows = Table(
    "open_flows", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("stream", Text, nullable=False),  # sensor/interface of the recorder that wrote them
    Column("as_of_ns", BigInteger, nullable=False),  # packet time the record was taken at
    *[Column(c.name, c.type, nullable=c.nullable) for c in flows.columns if c.name not in ("id", "capture_id")],
    Column("capture_id", BigId, ForeignKey("captures.id"), nullable=True),
    Index(None, "stream"),
    Index(None, "ts_ns"),
    Index(None, "uid"),
)

CAPTURE_FIELDS: tuple[str, ...] = tuple(c.name for c in captures.columns if c.name != "id")

# --- application-layer logs (migration 0003) ----------------------------------------------------
# One table per log of ``apps.records.LOGS``: id, capture_id, ts_ns, then for a connection's log
# uid and the endpoints (text and 16 bytes, as flows), then the log's own fields, named by
# ``records.column_name``. Times and intervals as ns integers (``<name>_ns``), sets and vectors
# as JSON text.

_ZEEK_SQL = {"count": BigInteger, "int": BigInteger, "port": Integer, "bool": lambda: Boolean(create_constraint=False),
             "double": Float, "time": BigInteger, "interval": BigInteger}
_ENDPOINTS = {"uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"}


def _app_table(name: str, fields) -> Table:
    cols: list = [Column("id", BigId, primary_key=True, autoincrement=True),
                  Column("capture_id", BigId, ForeignKey("captures.id"), nullable=True),
                  Column("ts_ns", BigInteger, nullable=False)]
    indexes = [Index(None, "ts_ns")]
    if name in CONN_LOGS:
        cols += [Column("uid", String(24), nullable=True),
                 Column("orig_h", String(45), nullable=True), Column("orig_p", Integer, nullable=True),
                 Column("resp_h", String(45), nullable=True), Column("resp_p", Integer, nullable=True),
                 Column("orig_a", LargeBinary(16), nullable=True), Column("resp_a", LargeBinary(16), nullable=True)]
        indexes += [Index(None, "uid"), Index(None, "orig_a"), Index(None, "resp_a")]
    for field, ztype in fields:
        if field == "ts" or field in _ENDPOINTS:
            continue
        sql = _ZEEK_SQL.get(ztype, Text)
        cols.append(Column(app_column_name(field, ztype), sql(), nullable=True))
        if ztype == "addr" and name not in CONN_LOGS:  # names.addr: 16 bytes for --host CIDR
            cols.append(Column(column_name(field) + "_a", LargeBinary(16), nullable=True))
            indexes.append(Index(None, column_name(field) + "_a"))
    if name == "files":
        indexes.append(Index(None, "fuid"))
    return Table(name, metadata, *cols, *indexes)


APP_TABLES: dict[str, Table] = {name: _app_table(name, fields) for name, fields in LOGS.items()}

# Parser exceptions (the dispatcher detaches the parser and counts them) per capture and service.
parser_failures = Table(
    "parser_failures", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("capture_id", BigId, ForeignKey("captures.id"), nullable=True),
    Column("service", Text, nullable=False),
    Column("count", BigInteger, nullable=False),
    Index(None, "capture_id"),
)

# --- alerts (migration 0004) ----------------------------------------------------------------------
# One row per alert, signature or behaviour: the EVE fields as columns to filter on, the full EVE
# object as JSON text (``eve``). Addresses also as 16 bytes (``src_a``, ``dest_a``) for --host CIDR.
alerts = Table(
    "alerts", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("capture_id", BigId, ForeignKey("captures.id"), nullable=True),
    Column("ts_ns", BigInteger, nullable=False),
    Column("uid", String(24), nullable=True),  # the flow's uid
    Column("flow_id", BigInteger, nullable=True),
    Column("community_id", String(64), nullable=True),
    Column("src_ip", String(45), nullable=False),
    Column("src_port", Integer, nullable=True),
    Column("dest_ip", String(45), nullable=False),
    Column("dest_port", Integer, nullable=True),
    Column("src_a", LargeBinary(16), nullable=True),
    Column("dest_a", LargeBinary(16), nullable=True),
    Column("proto", String(24), nullable=True),
    Column("app_proto", Text, nullable=True),
    Column("gid", BigInteger, nullable=False),
    Column("signature_id", BigInteger, nullable=False),
    Column("rev", BigInteger, nullable=False),
    Column("signature", Text, nullable=False),
    Column("category", Text, nullable=True),
    Column("severity", Integer, nullable=False),
    Column("action", String(16), nullable=False),
    Column("kind", String(16), nullable=False),  # signature or behaviour
    Column("tactic", Text, nullable=True),
    Column("technique", Text, nullable=True),
    Column("eve", Text, nullable=False),  # the EVE JSON object, as written
    Index(None, "ts_ns"),
    Index(None, "signature_id"),
    Index(None, "src_a"),
    Index(None, "dest_a"),
    Index(None, "uid"),
)

# The keys of a row handed to ``Store.add_alerts`` (``src_a``/``dest_a`` are computed there).
ALERT_FIELDS: tuple[str, ...] = tuple(c.name for c in alerts.columns if c.name not in ("id", "src_a", "dest_a"))

# --- log events (migration 0007) ------------------------------------------------------------------
# One row per file `wiretrail logs ingest` read (its kind, SHA-256, how many events were read and
# how many lines or records skipped), and one row per event in it: its time (UTC), host, source
# address (text and 16 bytes, as flows), account, action, outcome, the raw line, the event's fields
# as JSON text (for an evtx record its System and EventData fields, flattened) and where it came
# from (the file's row, its line or record number), and the flow that carried it (``uid``).
log_sources = Table(
    "log_sources", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("path", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # syslog, journal, web, evtx, unknown
    Column("host", Text, nullable=True),  # --host-name, when given
    Column("events", BigInteger, nullable=False, server_default="0"),
    Column("skipped", BigInteger, nullable=False, server_default="0"),
    Column("ingested_at", BigInteger, nullable=False),
    Index(None, "sha256"),
)

log_events = Table(
    "log_events", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source_id", BigId, ForeignKey("log_sources.id"), nullable=True),
    Column("line", BigInteger, nullable=True),  # line number (text logs) or record number (evtx)
    Column("ts_ns", BigInteger, nullable=True),  # UTC; NULL for a line kept raw without a time
    Column("host", Text, nullable=True),
    Column("kind", String(16), nullable=False),  # sshd, sudo, su, web, windows, ..., raw (unparsed)
    Column("src_ip", String(45), nullable=True),
    Column("src_a", LargeBinary(16), nullable=True),
    Column("src_port", Integer, nullable=True),
    Column("account", Text, nullable=True),
    Column("action", Text, nullable=True),
    Column("outcome", String(16), nullable=True),  # success, failure or NULL
    Column("raw", Text, nullable=True),
    Column("fields", Text, nullable=True),  # JSON object
    Column("uid", String(24), nullable=True),  # the flow that carried it, when one is found
    Index(None, "ts_ns"),
    Index(None, "src_a"),
    Index(None, "account"),
    Index(None, "source_id"),
    Index(None, "uid"),
)

# The columns a reader's row fills (``uid`` is set afterwards, by linking events to flows).
LOG_EVENT_FIELDS: tuple[str, ...] = tuple(c.name for c in log_events.columns if c.name not in ("id", "uid"))

# The recorder's notification queue (migration 0013): one row per alert and channel, kept until
# the channel took it, so a restart or a mail server that is down loses nothing.
notify_queue = Table(
    "notify_queue", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("channel", Text, nullable=False),  # smtp, or webhook:<the URL's SHA-256, 16 hex digits>
    Column("queued_ns", BigInteger, nullable=False),
    Column("alert", Text, nullable=False),  # JSON: the alert's fields a message needs
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_try_ns", BigInteger, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),  # the last failure
    Column("sent_ns", BigInteger, nullable=True),  # NULL until delivered; one message's rows share it
    Index(None, "channel", "sent_ns"),
)
