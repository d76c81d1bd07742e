"""Protocol records into the store during an ingest (``StoreOutput``, an ``apps.base.Output``), and
what an ingest stores after its parsers: parser failures, flows' services, MAC addresses.

    out = StoreOutput(store, extract_dir="case-files")   # an apps.base.Output
    out.capture_id = cid                                 # the capture being read
    layer = AppLayer(out, PARSERS); ...; layer.finish(); out.close()

Rows are few next to flows, so ``StoreOutput`` buffers them; with ``background`` a child process
(``RecordWriter``) makes their rows and inserts each table's rows in one transaction per batch,
otherwise the ingest's own process does. It never raises on what a parser hands it: values of
the wrong type are stored as unset, text that is not UTF-8 (or holds NUL, which PostgreSQL
refuses) is escaped as Zeek escapes it (``\\xNN``), keys a log does not list are dropped and
counted (``dropped_fields``).
"""

from __future__ import annotations

import pickle
from collections import Counter
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from recorder.core.apps.base import Conn, Parser
from recorder.core.apps.files import RangedFile, add_hashes, extract, file_record
from recorder.core.apps.records import LOGS
from recorder.core.errors import StoreError
from recorder.core.pipeline.child import Child, Inbox, Outbox
from recorder.core.schema import APP_TABLES, flows, parser_failures
from recorder.core.store.database import Database
from recorder.core.store.rows import KNOWN_FIELDS, ROW_MAKERS, clean_text, to_count, to_row
from recorder.core.store.sql import fast_sqlite_binding, insert_tuples

WRITER_ROWS = 20_000  # records the writer process inserts in one transaction, at most
MAX_RANGED_BYTES = 256 << 20  # bytes of ranged pieces held (for hashes and extraction) in one ingest
_HASH_DATA = "\x00body"
# a bulk load's record writer (``bulk``: an ingest, never the recorder, whose writer runs for weeks)
# drops an empty store's protocol indexes for the load and builds them at its end (SQLite;
# measured: README, "Per-record work out of the parsers' hot path")
DEFER_INDEXES = True


class StoreOutput:
    """An ``apps.base.Output`` that stores what the parsers find, in batches.

    ``capture_id`` is the capture a record is attributed to (the ingest sets it per file: the file
    being read when the record was made). The ``uid`` of a connection's records is read from the
    ``Conn`` when the batch is written, so a dispatcher may fill it in after a parser reported.
    Extraction failures (disk full, permissions) are reported through ``on_warning``, never raised
    into a parser. ``close()`` writes what is buffered.
    """

    inspecting = False  # no inspection buffers: the store keeps records, not rule-engine buffers

    def __init__(self, store: Database, *, extract_dir: str | None = None, batch_rows: int = 5000,
                 on_warning: Callable[[str], None] | None = None, background: bool = False,
                 bulk: bool = False) -> None:
        self.store = store
        self._secrets = getattr(store, "secrets", None)
        self._writer = RecordWriter(store, bulk=bulk) if background else None
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
        known = KNOWN_FIELDS[name]
        if not known.issuperset(record):
            for key in record:
                if key not in known and key not in ("proto", "uid") and not key.startswith("id."):
                    self.dropped_fields[f"{name}.{key}"] += 1
        # the connection's fields are not merged in here: the row takes them from the connection
        # where the record has none (``RowMaker``, ``conn_ident``); a copy, as the parser may reuse its dict
        self._add(name, record.copy(), conn)

    def credential(self, conn: Conn, *, ts: float, protocol: str, user: str | None,
                   secret: str | None, success: bool | None, note: str | None = None) -> None:
        self._add("credentials", {"ts": ts, "protocol": protocol, "user": user, "secret": secret,
                                  "success": success, "note": note}, conn)

    def file(self, conn: Conn, *, ts: float, data: bytes, is_orig: bool, source: str,
             filename: str | None = None, mime_type: str | None = None,
             total_bytes: int | None = None, missing_bytes: int = 0,
             piece: tuple[str, int] | None = None) -> str:
        if piece is not None:  # joined with the file's other pieces, written at close
            url, offset = piece
            ranged = self._ranged.get(url)
            if ranged is None:
                ranged = self._ranged[url] = RangedFile(url, source)
            self._ranged_bytes += ranged.add(conn, ts, offset, bytes(data or b""), to_count(total_bytes),
                                             keep=self._ranged_bytes < MAX_RANGED_BYTES)
            return ranged.fuid
        key = (conn.proto, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p, conn.start)
        index = self._file_index[key]
        self._file_index[key] += 1
        data = bytes(data or b"")
        deferred = self._writer is not None  # the hashes are computed by the writer process
        rec = file_record(conn, ts=ts, data=data, is_orig=is_orig, source=source, index=index,
                          filename=clean_text(filename), mime_type=mime_type,
                          total_bytes=to_count(total_bytes), missing_bytes=to_count(missing_bytes) or 0,
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
        if self._secrets is not None:  # encrypt_to: secrets leave the parsers encrypted
            record = self._secrets.seal(name, record)
        self._pending.append((name, record, conn, self.capture_id))
        if len(self._pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records (each table in one statement, all in one transaction)."""
        if not self._pending:
            return
        items = [(name, record, capture_id, conn.start, conn_ident(conn)) if conn is not None
                 else (name, record, capture_id, 0.0, None)
                 for name, record, conn, capture_id in self._pending]  # the uid is known by now
        self._pending = []
        if self._writer is not None:
            try:  # the records as they are: the child makes the rows
                data = pickle.dumps(items, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - a value that does not pickle: the rows are made here
                data = pickle.dumps(make_rows(items), protocol=pickle.HIGHEST_PROTOCOL)
            self._writer.put(data)
            return
        for name, n in insert_rows(self.store, make_rows(items)).items():
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


def conn_ident(conn: Conn) -> tuple:
    """A connection's fields for its records' rows (``RowMaker``'s ``ident``), as few bytes to pickle."""
    return (conn.uid, conn.orig_h, conn.orig_p, conn.resp_h, conn.resp_p, conn.proto)


def make_rows(items: list[tuple[str, dict, int | None, float, tuple | None]]) -> dict[str, list[tuple]]:
    """(log, record, capture_id, fallback time, connection fields or None) -> each log's rows
    (``RowMaker`` tuples)."""
    by_table: dict[str, list[tuple]] = {}
    for name, record, capture_id, fallback, ident in items:
        if _HASH_DATA in record:
            add_hashes(record, record.pop(_HASH_DATA))
        rows = by_table.get(name)
        if rows is None:
            rows = by_table[name] = []
        rows.append(ROW_MAKERS[name](record, capture_id, fallback, ident))
    return by_table


def insert_rows(store: Database, by_table: dict[str, list[tuple]]) -> dict[str, int]:
    """Rows (``RowMaker`` tuples) of each log into its table, in one transaction (``insert_tuples``:
    on PostgreSQL COPY; measured: README, "Measured choices")."""
    with store.db_errors("write protocol records"), store.engine.begin() as conn:
        for name, rows in by_table.items():
            insert_tuples(conn, APP_TABLES[name].name, ROW_MAKERS[name].columns, rows)
    return {name: len(rows) for name, rows in by_table.items()}


class RecordWriter:
    """Inserts ``StoreOutput``'s rows in a child process, on the second core (as ``FlowWriter``
    does for flows): the records are handed over pickled, through a pipe that blocks the producer
    while the child is behind, and the child makes their rows. An error in the child is re-raised
    as StoreError by the next ``put`` or by ``close``."""

    def __init__(self, store: Database, *, bulk: bool = False) -> None:
        """``bulk``: a load that ends (an ingest), whose writer may build the indexes at its end."""
        self.store = store
        self._child = Child(_record_writer_main, (store, bulk), name="wiretrail-record-writer",
                            failure=lambda err: StoreError(f"cannot write protocol records: {err}", path=store.display),
                            ended=StoreError("cannot write protocol records: the writer process ended unexpectedly",
                                             path=store.display),
                            store_path=store.display)

    def put(self, data: bytes) -> None:
        """``data``: pickled records (a list of ``make_rows`` items) or rows (its result)."""
        self._child.check()
        self._child.send(data)

    def close(self) -> Counter[str]:
        """Wait for every row to be written; the rows written per log."""
        written: Counter[str] = Counter()
        value = self._child.finish()
        self._child.raise_error()
        written.update(value)
        return written


def _record_writer_main(inbox: Inbox, outbox: Outbox, store: Database, bulk: bool = False) -> None:
    """The child: pickled batches of rows from the pipe into the store until the parent closes it."""
    store.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    fast_sqlite_binding()
    written: Counter[str] = Counter()
    failed = False
    ended = False
    deferred = False
    if bulk and DEFER_INDEXES and hasattr(store, "deferred_app_indexes"):
        try:  # an empty store's protocol indexes are built after the load (Migrations.deferred_app_indexes)
            deferred = store.deferred_app_indexes()
        except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
            failed = True
            outbox.error(err)
    while not ended:
        # what has arrived, up to WRITER_ROWS records, goes in one transaction
        by_table: dict[str, list[tuple]] = {}
        rows = 0
        try:
            while rows < WRITER_ROWS and (not by_table or inbox.poll()):
                try:
                    data = inbox.get()
                except EOFError:
                    ended = True
                    break
                if failed:
                    continue  # keep draining so that the producer never blocks
                batch = pickle.loads(data)
                for name, made in (make_rows(batch) if isinstance(batch, list) else batch).items():
                    by_table.setdefault(name, []).extend(made)
                    rows += len(made)
            if by_table and not failed:
                written.update(insert_rows(store, by_table))
        except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
            failed = True
            outbox.error(err)
    if deferred:
        try:
            store.build_app_indexes()
        except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
            if not failed:
                outbox.error(err)
    outbox.send("done", dict(written))


# --- after an ingest ---------------------------------------------------------------------------

def record_failures(store: Database, counts: dict[int | None, Counter]) -> None:
    """Store parser failures: capture_id -> Counter(service -> exceptions)."""
    rows = [{"capture_id": cid, "service": str(service), "count": int(n)}
            for cid, counter in counts.items() for service, n in sorted(counter.items()) if n > 0]
    if rows:
        with store.db_errors("write parser failures"), store.engine.begin() as conn:
            conn.execute(parser_failures.insert(), rows)


def update_services(store: Database, services: Iterable[tuple[str, list[str]]], *, batch: int = 5000) -> int:
    """Set flows.service (Zeek's comma-separated list) from the application layer, by uid."""
    n = 0
    rows: list[tuple[str, str]] = []
    with store.db_errors("update flow services"), store.engine.begin() as conn:
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


def stored_uids(store: Database, uids: Iterable[str], *, chunk: int = 500) -> set[str]:
    """Those of ``uids`` whose flow row is stored (a recorder sets a flow's service only then:
    its flows are written when they end, often after their protocol was recognised)."""
    uids = list(uids)
    found: set[str] = set()
    with store.db_errors("look up flows"), store.engine.connect() as conn:
        for i in range(0, len(uids), chunk):
            found.update(u for (u,) in conn.execute(sa.select(flows.c.uid).where(flows.c.uid.in_(uids[i:i + chunk]))))
    return found


def add_mac_records(store: Database, records: list[tuple[dict, int | None]]) -> None:
    """``MacTable`` records (record, capture id) into the ``macs`` table."""
    rows = [to_row("macs", record, capture_id) for record, capture_id in records]
    if rows:
        with store.db_errors("store MAC addresses"), store.engine.begin() as conn:
            conn.execute(APP_TABLES["macs"].insert(), rows)
