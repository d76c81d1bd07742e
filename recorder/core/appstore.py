"""Application-layer records in the store: writing them during an ingest, and reading them back.

    out = StoreOutput(store, extract_dir="case-files")   # an apps.base.Output
    out.capture_id = cid                                 # the capture being read
    layer = AppLayer(out, PARSERS); ...; layer.finish(); out.close()
    for rec in query_log(store, "dns", host="10.0.0.0/8"):   # Zeek records (``id.orig_h``, ...)
        ...
    for h in hosts(store):                               # every address seen in flows
        ...

Rows are few next to flows, so ``StoreOutput`` buffers them and inserts each table's rows in one
transaction per batch, in the ingest process. It never raises on what a parser hands it: values
of the wrong type are stored as unset, text that is not UTF-8 (or holds NUL, which PostgreSQL
refuses) is escaped as Zeek escapes it (``\\xNN``), keys a log does not list are dropped and
counted (``dropped_fields``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.apps.base import Conn, Parser
from recorder.core.apps.files import extract, file_record
from recorder.core.apps.records import CONN_LOGS, LOGS
from recorder.core.schema import APP_TABLES, app_column_name, flows, parser_failures
from recorder.core.store import Store, addr16, host_range

_INT64 = (-(1 << 63), (1 << 63) - 1)
_ENDPOINT_COLUMNS = (("id.orig_h", "orig_h"), ("id.orig_p", "orig_p"), ("id.resp_h", "resp_h"),
                     ("id.resp_p", "resp_p"))
_FIXED = {"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"}


# --- values: record -> column -----------------------------------------------------------------

def clean_text(value: Any) -> str | None:
    """Text any database stores: not-UTF-8 bytes and NUL as ``\\xNN`` (Zeek's escaping)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        s = value.decode("utf-8", "backslashreplace")
    else:
        s = value if isinstance(value, str) else str(value)
        try:
            s.encode("utf-8")
        except UnicodeEncodeError:
            try:  # bytes decoded with surrogateescape: back to the bytes, then escaped
                s = s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            except UnicodeEncodeError:
                s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in s:
        s = s.replace("\x00", "\\x00")
    return s


def seconds_to_ns(value: Any) -> int | None:
    """Epoch seconds or an interval (float) as integer ns, at Zeek's microsecond precision."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    ns = round(value * 1_000_000) * 1000
    return ns if _INT64[0] <= ns <= _INT64[1] else None


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return value
    return None


def _port(value: Any) -> int | None:
    v = _count(value)
    return v if v is not None and 0 <= v <= 65535 else None


def _bool(value: Any) -> bool | None:
    return bool(value) if isinstance(value, (bool, int)) else None


def _double(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(value)
        return v if math.isfinite(v) else None
    return None


def _collection(value: Any, ztype: str) -> str | None:
    if value is None:
        return None
    items = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else list(value)
    sub = ztype[ztype.index("[") + 1:-1]
    if sub in ("interval", "double"):
        out: list = [_double(v) for v in items]
    elif sub in ("count", "int", "port"):
        out = [_count(v) for v in items]
    else:
        out = [clean_text(v) for v in items]
    return json.dumps(out, ensure_ascii=False)


def to_column(value: Any, ztype: str) -> Any:
    """One record value as its column's value (see ``schema.app_column_name`` for the column)."""
    if value is None:
        return None
    if ztype in ("time", "interval"):
        return seconds_to_ns(value)
    if ztype in ("count", "int"):
        return _count(value)
    if ztype == "port":
        return _port(value)
    if ztype == "bool":
        return _bool(value)
    if ztype == "double":
        return _double(value)
    if ztype.startswith(("set[", "vector[")):
        return _collection(value, ztype)
    return clean_text(value)


def _addr16(text: Any) -> bytes | None:
    try:
        return addr16(str(text)) if text is not None else None
    except ValueError:
        return None


def to_row(name: str, record: dict, capture_id: int | None, fallback_ts: float = 0.0) -> dict:
    """A record of log ``name`` (Zeek field names) as a row of its table."""
    fields = LOGS[name]
    ts_ns = seconds_to_ns(record.get("ts"))
    row: dict[str, Any] = {"capture_id": capture_id,
                           "ts_ns": ts_ns if ts_ns is not None else seconds_to_ns(fallback_ts) or 0}
    if name in CONN_LOGS:
        uid = clean_text(record.get("uid"))
        row["uid"] = uid[:24] if uid else None
        for field, col in _ENDPOINT_COLUMNS:
            row[col] = to_column(record.get(field), "port" if col.endswith("_p") else "addr")
        row["orig_h"] = row["orig_h"][:45] if row["orig_h"] else None
        row["resp_h"] = row["resp_h"][:45] if row["resp_h"] else None
        row["orig_a"] = _addr16(row["orig_h"])
        row["resp_a"] = _addr16(row["resp_h"])
    for field, ztype in fields:
        if field in _FIXED:
            continue
        value = to_column(record.get(field), ztype)
        row[app_column_name(field, ztype)] = value
        if ztype == "addr" and name not in CONN_LOGS:
            row[app_column_name(field, ztype) + "_a"] = _addr16(value)
    return row


# --- values: column -> record -----------------------------------------------------------------

def _from_column(value: Any, ztype: str) -> Any:
    if value is None:
        return None
    if ztype in ("time", "interval"):
        return int(value) / 1_000_000_000
    if ztype.startswith(("set[", "vector[")):
        try:
            return json.loads(value)
        except ValueError:
            return None
    if ztype == "bool":
        return bool(value)
    return value


def from_row(name: str, row: dict) -> dict:
    """A stored row as a Zeek record of log ``name`` (every field, unset as None)."""
    rec: dict[str, Any] = {}
    for field, ztype in LOGS[name]:
        if field == "ts":
            rec["ts"] = row["ts_ns"] / 1_000_000_000
        elif field == "uid" and name in CONN_LOGS:
            rec["uid"] = row["uid"]
        elif field.startswith("id.") and name in CONN_LOGS:
            rec[field] = row[field[3:]]
        else:
            rec[field] = _from_column(row.get(app_column_name(field, ztype)), ztype)
    return rec


# --- writing during an ingest -----------------------------------------------------------------

class StoreOutput:
    """An ``apps.base.Output`` that stores what the parsers find, in batches.

    ``capture_id`` is the capture a record is attributed to (the ingest sets it per file: the file
    being read when the record was made). The ``uid`` of a connection's records is read from the
    ``Conn`` when the batch is written, so a dispatcher may fill it in after a parser reported.
    Extraction failures (disk full, permissions) are reported through ``on_warning``, never raised
    into a parser. ``close()`` writes what is buffered.
    """

    def __init__(self, store: Store, *, extract_dir: str | None = None, batch_rows: int = 5000,
                 on_warning: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.extract_dir = extract_dir
        self.batch_rows = batch_rows
        self.on_warning = on_warning
        self.capture_id: int | None = None
        self.rows_written: Counter[str] = Counter()
        self.dropped_fields: Counter[str] = Counter()  # "log.field" -> records that had it
        self.unknown_logs: Counter[str] = Counter()
        self.extract_errors = 0
        self._pending: list[tuple[str, dict, Conn | None, int | None]] = []
        self._file_index: Counter[tuple] = Counter()
        self._names_seen: set[tuple[str, str, str]] = set()

    # -- Output

    def log(self, name: str, record: dict, conn: Conn) -> None:
        fields = LOGS.get(name)
        if fields is None:
            self.unknown_logs[name] += 1
            return
        known = {f for f, _ in fields}
        for key in record:
            if key not in known and key not in ("proto", "uid") and not key.startswith("id."):
                self.dropped_fields[f"{name}.{key}"] += 1
        self._add(name, {**conn.ident(), "proto": conn.proto, **record}, conn)

    def credential(self, conn: Conn, *, ts: float, protocol: str, user: str | None,
                   secret: str | None, success: bool | None, note: str | None = None) -> None:
        self._add("credentials", {"ts": ts, **conn.ident(), "protocol": protocol, "user": user,
                                  "secret": secret, "success": success, "note": note}, conn)

    def file(self, conn: Conn, *, ts: float, data: bytes, is_orig: bool, source: str,
             filename: str | None = None, mime_type: str | None = None,
             total_bytes: int | None = None, missing_bytes: int = 0) -> str:
        key = (conn.proto, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p, conn.start)
        index = self._file_index[key]
        self._file_index[key] += 1
        data = bytes(data or b"")
        rec = file_record(conn, ts=ts, data=data, is_orig=is_orig, source=source, index=index,
                          filename=clean_text(filename), mime_type=mime_type,
                          total_bytes=_count(total_bytes), missing_bytes=_count(missing_bytes) or 0)
        if self.extract_dir is not None:
            try:
                rec["extracted"] = extract(self.extract_dir, rec["fuid"], rec["filename"], data, rec["mime_type"])
            except OSError as err:
                self.extract_errors += 1
                if self.on_warning:
                    self.on_warning(f"cannot extract file {rec['fuid']} to {self.extract_dir}: "
                                    f"{err.strerror or err}")
            else:
                rec["extracted_cutoff"] = False
                rec["extracted_size"] = len(data)
                rec["analyzers"] = [*rec["analyzers"], "EXTRACT"]
        self._add("files", rec, conn)
        return rec["fuid"]

    def name(self, addr: str, name: str, *, ts: float, source: str) -> None:
        key = (str(addr), str(name).lower(), str(source))
        if key in self._names_seen:  # a mapping is kept once per ingest, at its first sighting
            return
        self._names_seen.add(key)
        self._add("names", {"ts": ts, "addr": addr, "name": name, "source": source}, None)

    def expect(self, conn: Conn, *, orig_h: str | None, resp_h: str, resp_p: int,
               parser: type[Parser], context: dict, ts: float) -> None:
        """Expected connections are the dispatcher's business; nothing is stored."""

    # -- batching

    def _add(self, name: str, record: dict, conn: Conn | None) -> None:
        self._pending.append((name, record, conn, self.capture_id))
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records (each table in one statement, all in one transaction)."""
        if not self._pending:
            return
        by_table: dict[str, list[dict]] = {}
        for name, record, conn, capture_id in self._pending:
            if conn is not None and record.get("uid") is None and conn.uid is not None:
                record["uid"] = conn.uid
            fallback = conn.start if conn is not None else 0.0
            by_table.setdefault(name, []).append(to_row(name, record, capture_id, fallback))
        self._pending = []
        with self.store._errors("write protocol records"), self.store.engine.begin() as conn_:
            for name, rows in by_table.items():
                conn_.execute(APP_TABLES[name].insert(), rows)
                self.rows_written[name] += len(rows)

    def close(self) -> None:
        self.flush()


# --- after an ingest ---------------------------------------------------------------------------

def record_failures(store: Store, counts: dict[int | None, Counter]) -> None:
    """Store parser failures: capture_id -> Counter(service -> exceptions)."""
    rows = [{"capture_id": cid, "service": str(service), "count": int(n)}
            for cid, counter in counts.items() for service, n in sorted(counter.items()) if n > 0]
    if rows:
        with store._errors("write parser failures"), store.engine.begin() as conn:
            conn.execute(parser_failures.insert(), rows)


def update_services(store: Store, services: Iterable[tuple[str, list[str]]], *, batch: int = 5000) -> int:
    """Set flows.service (Zeek's comma-separated list) from the application layer, by uid."""
    stmt = flows.update().where(flows.c.uid == sa.bindparam("u")).values(service=sa.bindparam("s"))
    n = 0
    rows: list[dict] = []
    with store._errors("update flow services"), store.engine.begin() as conn:
        for uid, names in services:
            value = ",".join(dict.fromkeys(s for s in names if s))
            if uid and value:
                rows.append({"u": uid, "s": value})
            if len(rows) >= batch:
                conn.execute(stmt, rows)
                n += len(rows)
                rows = []
        if rows:
            conn.execute(stmt, rows)
            n += len(rows)
    return n


def app_summary(conn: Connection) -> dict:
    """Counts per application log and parser failures per capture and service (``Store.info``)."""
    counts = {name: int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0)
              for name, t in APP_TABLES.items()}
    fails = conn.execute(
        sa.select(parser_failures.c.capture_id, parser_failures.c.service, sa.func.sum(parser_failures.c.count))
        .group_by(parser_failures.c.capture_id, parser_failures.c.service)
        .order_by(parser_failures.c.capture_id, parser_failures.c.service)).all()
    return {"app_records": counts,
            "parser_failures": [{"capture_id": c, "service": s, "count": int(n)} for c, s, n in fails]}


# --- reading -----------------------------------------------------------------------------------

def _between(col_lo: sa.ColumnElement, host: str) -> sa.ColumnElement:
    lo, hi = host_range(host)
    return col_lo == lo if lo == hi else col_lo.between(lo, hi)


def query_log(store: Store, name: str, *, host: str | None = None, port: int | None = None,
              since: int | None = None, until: int | None = None, uid: str | None = None,
              limit: int | None = None, batch: int = 1000) -> Iterator[dict]:
    """Records of log ``name`` as Zeek records, ordered by (ts, id), matching every filter given.

    As ``Store.query_flows``: ``host`` an IP or CIDR on either endpoint (``names``: the address),
    ``port`` either endpoint, ``since`` inclusive / ``until`` exclusive in ns. Raises ValueError
    for an unknown log, a bad host or limit, before touching the database.
    """
    if name not in APP_TABLES:
        raise ValueError(f"unknown log {name!r}")
    t = APP_TABLES[name]
    stmt = sa.select(t)
    if host is not None:
        if name in CONN_LOGS:
            stmt = stmt.where(sa.or_(_between(t.c.orig_a, host), _between(t.c.resp_a, host)))
        else:
            stmt = stmt.where(_between(t.c.addr_a, host))
    if port is not None:
        if name not in CONN_LOGS:
            raise ValueError(f"the {name} log has no ports")
        stmt = stmt.where(sa.or_(t.c.orig_p == port, t.c.resp_p == port))
    if since is not None:
        stmt = stmt.where(t.c.ts_ns >= since)
    if until is not None:
        stmt = stmt.where(t.c.ts_ns < until)
    if uid is not None:
        if name not in CONN_LOGS:
            raise ValueError(f"the {name} log has no uid")
        stmt = stmt.where(t.c.uid == uid)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, not {limit}")
        stmt = stmt.limit(limit)
    stmt = stmt.order_by(t.c.ts_ns, t.c.id)
    return (from_row(name, row) for row in store._stream(stmt, batch))


def hosts(store: Store, *, host: str | None = None, since: int | None = None, until: int | None = None,
          limit: int | None = None) -> list[dict]:
    """Every address in the flows (matching the filters): first and last seen, flows, bytes it sent
    (``bytes_out``: as originator its orig_bytes, as responder its resp_bytes) and received, the
    services it offered (as responder), and the names seen for it. ``mac`` is not recorded yet."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    f = flows.c
    end = f.ts_ns + sa.func.coalesce(f.duration_ns, 0)

    def side(h, a, out_bytes, in_bytes):
        stmt = sa.select(h.label("addr"), a.label("a"), f.ts_ns.label("first"), end.label("last"),
                         sa.func.coalesce(out_bytes, 0).label("out_b"), sa.func.coalesce(in_bytes, 0).label("in_b"))
        if host is not None:
            stmt = stmt.where(_between(a, host))
        if since is not None:
            stmt = stmt.where(f.ts_ns >= since)
        if until is not None:
            stmt = stmt.where(f.ts_ns < until)
        return stmt

    both = sa.union_all(side(f.orig_h, f.orig_a, f.orig_bytes, f.resp_bytes),
                        side(f.resp_h, f.resp_a, f.resp_bytes, f.orig_bytes)).subquery()
    stmt = (sa.select(both.c.addr, sa.func.min(both.c.first), sa.func.max(both.c.last), sa.func.count(),
                      sa.func.sum(both.c.out_b), sa.func.sum(both.c.in_b))
            .group_by(both.c.addr).order_by(sa.func.min(both.c.first), both.c.addr))
    if limit is not None:
        stmt = stmt.limit(limit)
    svc = sa.select(f.resp_h, f.service).where(f.service.is_not(None), f.service != "").distinct()
    if host is not None:
        svc = svc.where(_between(f.resp_a, host))
    if since is not None:
        svc = svc.where(f.ts_ns >= since)
    if until is not None:
        svc = svc.where(f.ts_ns < until)
    names_t = APP_TABLES["names"]
    nm = sa.select(names_t.c.addr, names_t.c.name).distinct()
    if host is not None:
        nm = nm.where(_between(names_t.c.addr_a, host))
    with store._errors("read hosts"), store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        services: dict[str, set[str]] = {}
        for addr, service in conn.execute(svc):
            services.setdefault(addr, set()).update(s for s in service.split(",") if s)
        names: dict[str, set[str]] = {}
        for addr, name in conn.execute(nm):
            names.setdefault(addr, set()).add(name)
    return [{"addr": addr, "mac": None, "first_seen": first / 1_000_000_000, "last_seen": last / 1_000_000_000,
             "flows": int(n), "bytes_out": int(out_b or 0), "bytes_in": int(in_b or 0),
             "services": sorted(services.get(addr, ())), "names": sorted(names.get(addr, ()))}
            for addr, first, last, n, out_b, in_b in rows]
