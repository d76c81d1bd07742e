"""The ``flows`` and ``open_flows`` tables: the one writer of flow rows (a process fed by a queue),
the interim records of open connections, and the conn.log query.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, NamedTuple, Self

from sqlalchemy.engine import Connection

from recorder.core.errors import StoreError
from recorder.core.pipeline.child import Child, Inbox, Outbox
from recorder.core.schema import FLOW_FIELDS, open_flows
from recorder.core.store.database import Database, first_line
from recorder.core.store.listing import flows_query
from recorder.core.store.sql import fast_sqlite_binding, insert_tuples

if TYPE_CHECKING:  # numpy, which FlowBatch needs, is imported only by the commands that meter
    from recorder.core.flow.flowrows import FlowBatch


class FlowTable(Database):
    """The store's methods for flows."""

    def flow_writer(self, *, batch_rows: int = 20_000, queue_batches: int = 16) -> FlowWriter:
        """The writer process for flow rows; use as a context manager or call ``close()``."""
        return FlowWriter(self, batch_rows=batch_rows, queue_batches=queue_batches)

    def insert_flows(self, rows: Sequence[dict] | Sequence[tuple], connection: Connection | None = None) -> int:
        """Insert flow rows in one transaction, synchronously (the writer process's primitive).

        Rows are dicts with the FLOW_FIELDS keys, or tuples of values in FLOW_FIELDS order (what the
        flow meter hands over, without building a dict per flow).
        """
        if not rows:
            return 0
        from recorder.core.flow.flowrows import FlowBatch

        if isinstance(rows, FlowBatch):
            rows = rows.rows()
            if not rows:
                return 0
        try:
            values = rows if isinstance(rows[0], tuple) else list(map(_FLOW_VALUES, rows))
        except KeyError as err:
            raise StoreError(f"cannot write flows: a flow row has no field {err}",
                             path=self.display) from None
        with self.db_errors("write flows"):
            if connection is None:
                with self.engine.connect() as conn:
                    _insert_flow_batch(conn, values)
            else:
                _insert_flow_batch(connection, values)
        return len(values)

    def replace_open_flows(self, stream: str, batch: FlowBatch | None, as_of_ns: int,
                           connection: Connection | None = None) -> int:
        """Make ``batch`` (the meter's snapshot) the interim records of ``stream``, in one
        transaction; returns rows. The recorder hands these to its flow writer
        (``FlowWriter.put_open_flows``) and calls this directly only to clear them at its stop."""
        rows = [] if batch is None else batch.rows()
        with self.db_errors("write open flows"):
            if connection is None:
                with self.engine.connect() as conn:
                    _replace_open_flows(conn, stream, as_of_ns, rows)
            else:
                _replace_open_flows(connection, stream, as_of_ns, rows)
        return len(rows)

    def query_flows(self, *, host: str | None = None, port: int | None = None, proto: str | None = None,
                    since: int | None = None, until: int | None = None,
                    states: Iterable[str] | None = None, uid: str | None = None,
                    limit: int | None = None, batch: int = 1000, open_only: bool = False,
                    active_since: int | None = None) -> Iterator[dict]:
        """Flow rows matching every given filter, ordered by (ts_ns, id), streamed as dicts.

        ``host`` is an IP or CIDR matched on either side; ``port`` either side; ``since`` inclusive
        and ``until`` exclusive, both ns since the epoch on ``ts_ns``; ``states`` any of these
        conn_state values; ``active_since`` the flows whose last packet is at or after it, however
        long before they started (index ranges, not a scan). With ``open_only``, the recorder's interim records of connections that
        were still open at its last rotation (table open_flows, with ``as_of_ns``) instead.
        Raises ValueError for a bad host or limit, before touching the database.
        """
        query = flows_query(host=host, port=port, proto=proto, since=since, until=until, states=states,
                            uid=uid, limit=limit, open_only=open_only, active_since=active_since)
        return self.stream_query(query, "read flows", batch)


_FLOW_VALUES = itemgetter(*FLOW_FIELDS)


class OpenFlows(NamedTuple):
    """Interim records for the flow writer: ``stream``'s open flows are replaced by ``batch``
    (None: cleared), after the flows handed over before them are inserted."""
    stream: str
    batch: FlowBatch | None
    as_of_ns: int


def _replace_open_flows(conn: Connection, stream: str, as_of_ns: int, rows: list[tuple]) -> None:
    with conn.begin():
        conn.execute(open_flows.delete().where(open_flows.c.stream == stream))
        if rows:  # tuples, as flows are written
            insert_tuples(conn, "open_flows", ("stream", "as_of_ns", *FLOW_FIELDS),
                          [(stream, as_of_ns, *r) for r in rows])


def _insert_flow_batch(conn: Connection, values: Sequence[tuple]) -> None:
    """One transaction of flow rows (tuples in FLOW_FIELDS order), through ``insert_tuples``
    (faster than a Core ``insert(flows)`` of dicts; measured: README, "Measured choices")."""
    with conn.begin():
        insert_tuples(conn, "flows", FLOW_FIELDS, values)


class FlowWriter:
    """The single writer of flow rows: a separate process fed by a bounded queue, inserting in batches.

    A process rather than a thread: turning flow columns into rows and inserting them is CPU work
    (about a third of an ingest) that, in a thread, would share the interpreter lock with the
    metering instead of running on the second core. ``put`` takes a FlowBatch or a list of rows
    (dicts with the FLOW_FIELDS keys, or tuples in that order) and blocks when the queue is full.
    An error in the writer is re-raised as StoreError by the next ``put`` or by ``close``; after
    an error the writer keeps draining the queue so a producer never blocks forever.
    """

    def __init__(self, store: Database, *, batch_rows: int = 20_000, queue_batches: int = 16) -> None:
        self.store = store
        self.rows_written = 0
        self._closed = False
        self._child = Child(_writer_main, (store, batch_rows), name="wiretrail-flow-writer", queue=queue_batches,
                            failure=lambda err: StoreError(f"cannot write flows: {first_line(err)}",
                                                           path=store.display),
                            ended=StoreError("cannot write flows: the writer process ended unexpectedly",
                                             path=store.display),
                            store_path=store.display)

    def put(self, rows: FlowBatch | list[dict] | list[tuple]) -> None:
        if len(rows):
            self._send(rows)

    def put_open_flows(self, item: OpenFlows) -> None:
        """Interim records of open connections, written by the writer after the flows put before
        them (so a connection that ended shows as a flow before its interim record goes): the
        recorder's meter only pickles its snapshot."""
        self._send(item)

    def put_index(self, pending) -> None:
        """A file's packet index (``packetindex.PendingIndex``): encoded and stored by the writer."""
        self._send(pending)

    def _send(self, item) -> None:
        if self._closed:
            raise StoreError("flow writer is closed", path=self.store.display)
        self._child.check()
        self._child.send(item)

    def close(self) -> None:
        """Flush queued rows, stop the writer, and raise StoreError if it failed."""
        if not self._closed:
            self._closed = True
            written = self._child.finish()
            if self._child.error is None:
                self.rows_written = written
        self._child.raise_error()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
            return
        try:  # flush what was handed over, but never mask the body's exception
            self.close()
        except StoreError:
            pass


def _writer_main(inbox: Inbox, outbox: Outbox, store: FlowTable, batch_rows: int) -> None:
    """The writer process: rows from the queue into the database, in transactions of batch_rows."""
    # The parent's pooled connections came along with the fork; leave them to the parent.
    store.engine.dispose(close=False)
    fast_sqlite_binding()
    from recorder.core.flow.flowrows import FlowBatch
    from recorder.core.flow.packetindex import PendingIndex

    written = 0
    failed = False
    pending: list = []
    try:
        with store.engine.connect() as conn:
            for item in inbox:  # until the end marker (or the parent's death)
                if isinstance(item, PendingIndex):
                    store.add_packet_index(item.capture_id, item.builder.entries(), conn)
                    continue
                if isinstance(item, OpenFlows):
                    written += store.insert_flows(pending, conn)
                    pending = []
                    store.replace_open_flows(item.stream, item.batch, item.as_of_ns, conn)
                    continue
                if isinstance(item, FlowBatch):
                    item = item.rows()
                pending.extend(item)
                if len(pending) >= batch_rows or not inbox.poll():
                    written += store.insert_flows(pending, conn)
                    pending = []
            written += store.insert_flows(pending, conn)
    except BaseException as err:  # noqa: BLE001 - reported to the producer, one line
        failed = True
        outbox.error(err)
        for _ in inbox:  # keep draining so that the producer never blocks
            pass
    outbox.send("done", written if not failed else 0)
