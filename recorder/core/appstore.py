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

import functools
import json
import math
import multiprocessing
import pickle
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from recorder.core.apps.base import Conn, Parser
from recorder.core.apps.files import RangedFile, add_hashes, extract, file_record
from recorder.core.apps.records import CONN_LOGS, LOGS
from recorder.core.errors import StoreError
from recorder.core.schema import APP_TABLES, app_column_name, flows, parser_failures
from recorder.core.store import Store, addr16, host_range, insert_tuples

_INT64 = (-(1 << 63), (1 << 63) - 1)
_ENDPOINT_COLUMNS = (("id.orig_h", "orig_h"), ("id.orig_p", "orig_p"), ("id.resp_h", "resp_h"),
                     ("id.resp_p", "resp_p"))
_FIXED = {"ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p"}
WRITER_ROWS = 20_000  # records the writer process inserts in one transaction, at most
MAX_RANGED_BYTES = 256 << 20  # bytes of ranged pieces held (for hashes and extraction) in one ingest
_HASH_DATA = "\x00body"  # a files record's body, whose hashes the writer process fills in


# --- values: record -> column -----------------------------------------------------------------

def clean_text(value: Any) -> str | None:
    """Text any database stores: not-UTF-8 bytes and NUL as ``\\xNN`` (Zeek's escaping)."""
    if value is None:
        return None
    if type(value) is str and value.isascii() and "\x00" not in value:  # the common case, cheaply
        return value
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
    scaled = value * 1_000_000
    if isinstance(scaled, float) and not math.isfinite(scaled):  # inf, nan, or a float that overflows here
        return None
    ns = round(scaled) * 1000
    return ns if _INT64[0] <= ns <= _INT64[1] else None


def _count(value: Any) -> int | None:
    if type(value) is int:  # the common case
        return value if _INT64[0] <= value <= _INT64[1] else None
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


_json_text = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(x, ensure_ascii=False), built once


def _collection(value: Any, ztype: str) -> str | None:
    if value is None:
        return None
    if type(value) is list and not value:
        return "[]"
    items = [value] if isinstance(value, (str, bytes)) or not isinstance(value, Iterable) else list(value)
    sub = ztype[ztype.index("[") + 1:-1]
    if sub in ("interval", "double"):
        out: list = [_double(v) for v in items]
    elif sub in ("count", "int", "port"):
        out = [_count(v) for v in items]
    else:
        out = [clean_text(v) for v in items]
    return _json_text(out)


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
    return _addr16_of(str(text)) if text is not None else None


@functools.lru_cache(maxsize=1 << 16)
def _addr16_of(text: str) -> bytes | None:
    try:
        return addr16(text)
    except ValueError:
        return None


def _converter(ztype: str) -> Callable[[Any], Any]:
    """``to_column`` for one Zeek type, chosen once (every converter maps None to None)."""
    if ztype in ("time", "interval"):
        return seconds_to_ns
    if ztype in ("count", "int"):
        return _count
    if ztype == "port":
        return _port
    if ztype == "bool":
        return _bool
    if ztype == "double":
        return _double
    if ztype.startswith(("set[", "vector[")):
        return functools.partial(_collection, ztype=ztype)
    return clean_text


class _RowMaker:
    """The rows of one log's table as tuples in ``columns`` order (``to_row`` without the per-field
    decisions: the converters are chosen once per log)."""

    def __init__(self, name: str) -> None:
        self.conn_log = name in CONN_LOGS
        columns = ["capture_id", "ts_ns"]
        if self.conn_log:
            columns += ["uid", "orig_h", "orig_p", "resp_h", "resp_p", "orig_a", "resp_a"]
        self.fields: list[tuple[str, Callable[[Any], Any], bool]] = []
        for field, ztype in LOGS[name]:
            if field in _FIXED:
                continue
            col = app_column_name(field, ztype)
            with_a = ztype == "addr" and not self.conn_log
            columns.append(col)
            if with_a:
                columns.append(col + "_a")
            self.fields.append((field, _converter(ztype), with_a))
        self.columns = tuple(columns)

    def __call__(self, record: dict, capture_id: int | None, fallback_ts: float = 0.0) -> tuple:
        get = record.get
        ts_ns = seconds_to_ns(get("ts"))
        vals: list[Any] = [capture_id, ts_ns if ts_ns is not None else seconds_to_ns(fallback_ts) or 0]
        if self.conn_log:
            uid = clean_text(get("uid"))
            orig_h = clean_text(get("id.orig_h"))
            resp_h = clean_text(get("id.resp_h"))
            orig_h = orig_h[:45] if orig_h else None
            resp_h = resp_h[:45] if resp_h else None
            vals += (uid[:24] if uid else None, orig_h, _port(get("id.orig_p")), resp_h, _port(get("id.resp_p")),
                     _addr16(orig_h), _addr16(resp_h))
        append = vals.append
        for field, conv, with_a in self.fields:
            value = get(field)
            if value is not None:  # every converter maps None to None
                value = conv(value)
            append(value)
            if with_a:
                append(_addr16(value))
        return tuple(vals)


_ROW_MAKERS: dict[str, _RowMaker] = {name: _RowMaker(name) for name in LOGS}
_KNOWN: dict[str, frozenset[str]] = {name: frozenset(f for f, _ in fields) for name, fields in LOGS.items()}


def to_row(name: str, record: dict, capture_id: int | None, fallback_ts: float = 0.0) -> dict:
    """A record of log ``name`` (Zeek field names) as a row of its table."""
    maker = _ROW_MAKERS[name]
    return dict(zip(maker.columns, maker(record, capture_id, fallback_ts)))


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

    inspecting = False  # no inspection buffers: the store keeps records, not rule-engine buffers

    def __init__(self, store: Store, *, extract_dir: str | None = None, batch_rows: int = 5000,
                 on_warning: Callable[[str], None] | None = None, background: bool = False) -> None:
        self.store = store
        self._writer = _RecordWriter(store) if background else None
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
        self._macs_seen: set[tuple[str, str, str]] = set()
        self._ranged: dict[str, RangedFile] = {}  # URL -> the pieces fetched of it by ranges
        self._ranged_bytes = 0

    # -- Output

    def log(self, name: str, record: dict, conn: Conn) -> None:
        fields = LOGS.get(name)
        if fields is None:
            self.unknown_logs[name] += 1
            return
        known = _KNOWN[name]
        if not known.issuperset(record):
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
             total_bytes: int | None = None, missing_bytes: int = 0,
             piece: tuple[str, int] | None = None) -> str:
        if piece is not None:  # joined with the file's other pieces, written at close
            url, offset = piece
            ranged = self._ranged.get(url)
            if ranged is None:
                ranged = self._ranged[url] = RangedFile(url, source)
            self._ranged_bytes += ranged.add(conn, ts, offset, bytes(data or b""), _count(total_bytes),
                                             keep=self._ranged_bytes < MAX_RANGED_BYTES)
            return ranged.fuid
        key = (conn.proto, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p, conn.start)
        index = self._file_index[key]
        self._file_index[key] += 1
        data = bytes(data or b"")
        deferred = self._writer is not None  # the hashes are computed by the writer process
        rec = file_record(conn, ts=ts, data=data, is_orig=is_orig, source=source, index=index,
                          filename=clean_text(filename), mime_type=mime_type,
                          total_bytes=_count(total_bytes), missing_bytes=_count(missing_bytes) or 0,
                          hashes=not deferred)
        if deferred and "MD5" in rec["analyzers"]:
            rec[_HASH_DATA] = data
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

    def mac(self, addr: str, mac: str, *, ts: float, source: str) -> None:
        key = (str(addr), str(mac).lower(), str(source))
        if key in self._macs_seen:  # like names: once per ingest, at its first sighting
            return
        self._macs_seen.add(key)
        self._add("macs", {"ts": ts, "addr": addr, "mac": key[1], "source": source, "last_seen": ts}, None)

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
        items = []
        for name, record, conn, capture_id in self._pending:
            if conn is not None and record.get("uid") is None and conn.uid is not None:
                record["uid"] = conn.uid
            items.append((name, record, capture_id, conn.start if conn is not None else 0.0))
        self._pending = []
        if self._writer is not None:
            try:  # the records as they are: the child makes the rows
                data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - a value that does not pickle: the rows are made here
                data = pickle.dumps(_make_rows(items), protocol=pickle.HIGHEST_PROTOCOL)
            self._writer.put(data)
            return
        for name, n in _insert_rows(self.store, _make_rows(items)).items():
            self.rows_written[name] += n

    def _write_ranged(self) -> None:
        """The files fetched by ranges: one record per connection that carried a piece."""
        ranged, self._ranged, self._ranged_bytes = self._ranged, {}, 0
        for rf in ranged.values():
            records, data = rf.records()
            extracted = None
            if data is not None and self.extract_dir is not None:
                try:
                    extracted = extract(self.extract_dir, rf.fuid, None, data, records[0][0]["mime_type"])
                except OSError as err:
                    self.extract_errors += 1
                    if self.on_warning:
                        self.on_warning(f"cannot extract file {rf.fuid} to {self.extract_dir}: {err.strerror or err}")
            for rec, conn in records:
                if extracted is not None:
                    rec.update(extracted=extracted, extracted_cutoff=False, extracted_size=len(data),
                               analyzers=[*rec["analyzers"], "EXTRACT"])
                self._add("files", rec, conn)

    def close(self) -> None:
        self._write_ranged()
        self.flush()
        if self._writer is not None:
            writer, self._writer = self._writer, None
            self.rows_written.update(writer.close())


def _make_rows(items: list[tuple[str, dict, int | None, float]]) -> dict[str, list[tuple]]:
    """(log, record, capture_id, fallback time) -> each log's rows (``_RowMaker`` tuples)."""
    by_table: dict[str, list[tuple]] = {}
    for name, record, capture_id, fallback in items:
        if _HASH_DATA in record:
            add_hashes(record, record.pop(_HASH_DATA))
        rows = by_table.get(name)
        if rows is None:
            rows = by_table[name] = []
        rows.append(_ROW_MAKERS[name](record, capture_id, fallback))
    return by_table


def _insert_rows(store: Store, by_table: dict[str, list[tuple]]) -> dict[str, int]:
    """Rows (``_RowMaker`` tuples) of each log into its table, in one transaction (``insert_tuples``:
    on PostgreSQL COPY, measured for 34,629 records 0.25 s of the writer's time against 0.51 s)."""
    with store._errors("write protocol records"), store.engine.begin() as conn:
        for name, rows in by_table.items():
            insert_tuples(conn, APP_TABLES[name].name, _ROW_MAKERS[name].columns, rows)
    return {name: len(rows) for name, rows in by_table.items()}


class _RecordWriter:
    """Inserts ``StoreOutput``'s rows in a child process, on the second core (as ``FlowWriter``
    does for flows): the records are handed over pickled, through a pipe that blocks the producer
    while the child is behind, and the child makes their rows. An error in the child is re-raised
    as StoreError by the next ``put`` or by ``close``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._error: str | None = None
        ctx = multiprocessing.get_context("fork")
        recv_end, self._send = ctx.Pipe(duplex=False)
        self._reply, reply_end = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_record_writer_main, args=(store, recv_end, self._send, reply_end),
                                 name="wiretrail-record-writer", daemon=True)
        self._proc.start()
        recv_end.close()
        reply_end.close()

    def put(self, data: bytes) -> None:
        """``data``: pickled records (a list of ``_make_rows`` items) or rows (its result)."""
        self._poll()
        try:
            self._send.send_bytes(data)
        except OSError:
            self._error = self._error or "cannot write protocol records: the writer process ended unexpectedly"
        self._raise_error()

    def close(self) -> Counter[str]:
        """Wait for every row to be written; the rows written per log."""
        written: Counter[str] = Counter()
        try:
            self._send.close()
        except OSError:
            pass
        while True:
            try:
                kind, value = self._reply.recv()
            except EOFError:
                self._error = self._error or "cannot write protocol records: the writer process ended unexpectedly"
                break
            if kind == "error":
                self._error = self._error or value
            elif kind == "done":
                written.update(value)
                break
        self._reply.close()
        self._proc.join()
        self._raise_error()
        return written

    def _poll(self) -> None:
        while self._error is None and self._reply.poll():
            kind, value = self._reply.recv()
            if kind == "error":
                self._error = value

    def _raise_error(self) -> None:
        if self._error is not None:
            raise StoreError(self._error, path=self.store.display)


def _record_writer_main(store: Store, recv, parent_send, reply) -> None:
    """The child: pickled batches of rows from ``recv`` into the store until the parent closes the pipe."""
    parent_send.close()  # so that the parent's end closing (or the parent dying) ends recv with EOF
    store.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the writer stops
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    written: Counter[str] = Counter()
    failed = False
    ended = False
    while not ended:
        # what has arrived, up to WRITER_ROWS records, goes in one transaction
        by_table: dict[str, list[tuple]] = {}
        rows = 0
        try:
            while rows < WRITER_ROWS and (not by_table or recv.poll()):
                try:
                    data = recv.recv_bytes()
                except (EOFError, OSError):
                    ended = True
                    break
                if failed:
                    continue  # keep draining so that the producer never blocks
                batch = pickle.loads(data)
                for name, made in (_make_rows(batch) if isinstance(batch, list) else batch).items():
                    by_table.setdefault(name, []).extend(made)
                    rows += len(made)
            if by_table and not failed:
                written.update(_insert_rows(store, by_table))
        except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
            failed = True
            msg = err.message if isinstance(err, StoreError) else f"cannot write protocol records: {err}"
            reply.send(("error", msg))
    reply.send(("done", dict(written)))
    reply.close()


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
    n = 0
    rows: list[tuple[str, str]] = []
    with store._errors("update flow services"), store.engine.begin() as conn:
        # the driver's executemany with tuples: a Core update() with dicts took twice as long
        mark = "%s" if conn.dialect.paramstyle in ("pyformat", "format") else "?"
        sql = f"UPDATE {flows.name} SET service = {mark} WHERE uid = {mark}"
        for uid, names in services:
            value = ",".join(dict.fromkeys(s for s in names if s))
            if uid and value:
                rows.append((value, uid))
            if len(rows) >= batch:
                conn.exec_driver_sql(sql, rows)
                n += len(rows)
                rows = []
        if rows:
            conn.exec_driver_sql(sql, rows)
            n += len(rows)
    return n


def stored_uids(store: Store, uids: Iterable[str], *, chunk: int = 500) -> set[str]:
    """Those of ``uids`` whose flow row is stored (a recorder sets a flow's service only then:
    its flows are written when they end, often after their protocol was recognised)."""
    uids = list(uids)
    found: set[str] = set()
    with store._errors("look up flows"), store.engine.connect() as conn:
        for i in range(0, len(uids), chunk):
            found.update(u for (u,) in conn.execute(sa.select(flows.c.uid).where(flows.c.uid.in_(uids[i:i + chunk]))))
    return found


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
    services it offered (as responder), the names seen for it and (``mac``) the MACs kept for it
    in ``macs``, comma-joined."""
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
    macs_t = APP_TABLES["macs"]
    mc = sa.select(macs_t.c.addr, macs_t.c.mac).distinct()
    if host is not None:
        mc = mc.where(_between(macs_t.c.addr_a, host))
    with store._errors("read hosts"), store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
        services: dict[str, set[str]] = {}
        for addr, service in conn.execute(svc):
            services.setdefault(addr, set()).update(s for s in service.split(",") if s)
        names: dict[str, set[str]] = {}
        for addr, name in conn.execute(nm):
            names.setdefault(addr, set()).add(name)
        macs: dict[str, set[str]] = {}
        for addr, mac in conn.execute(mc):
            macs.setdefault(addr, set()).add(mac)
    return [{"addr": addr, "mac": ",".join(sorted(macs[addr])) if addr in macs else None,
             "first_seen": first / 1_000_000_000, "last_seen": last / 1_000_000_000,
             "flows": int(n), "bytes_out": int(out_b or 0), "bytes_in": int(in_b or 0),
             "services": sorted(services.get(addr, ())), "names": sorted(names.get(addr, ()))}
            for addr, first, last, n, out_b, in_b in rows]
