"""Where a stream's metered traffic goes besides its capture files: flows to the database writer
(``FlowSink``), packets to the protocol parsers' process (``LiveApps``), and the counters both
keep for the stream's stats line (``Counters``). Neither ever makes capture wait: a database
outage leaves flows in a bounded backlog, retried; parsers that fall behind or fail skip batches
(counted), and the capture files keep every packet for a later ingest."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from recorder.core.decode.mactable import MacTable
from recorder.core.errors import StoreError, WiretrailError
from recorder.core.flow.flowid import LocalNets
from recorder.core.store import Store
from recorder.core.store.flows import OpenFlows

log = logging.getLogger("wiretrail-recorder")

FLOW_RETRY_SECONDS = 30.0
FLOW_BACKLOG_BATCHES = 256
APP_QUEUE_BYTES = 128 << 20  # packet bytes waiting for the protocol parsers; a batch finding it full is not parsed
APP_PENDING_SERVICES = 1_000_000  # flows whose service waits for their row to be stored


@dataclass(slots=True)
class Counters:
    packets: int = 0
    bytes: int = 0
    paused_dropped: int = 0
    flows: int = 0
    flows_lost: int = 0
    parser_skipped: int = 0  # packets not parsed: the parsers were behind (or had failed), or capture was
    shed: int = 0  # of which: capture was behind (recorder.lag), fed to no parser or dropped from their queue
    files_sealed: int = 0
    files_deleted: int = 0
    repaired: int = 0
    last: dict = field(default_factory=dict)


class FlowSink:
    """Flows from the meter to the database writer process, surviving a database outage."""

    def __init__(self, store: Store, counters: Counters) -> None:
        self.store = store
        self.counters = counters
        self.writer = None
        self.backlog: deque = deque(maxlen=FLOW_BACKLOG_BATCHES)
        self.retry_at = 0.0
        self._open()

    def _open(self) -> None:
        try:
            self.writer = self.store.flow_writer(batch_rows=5000)
        except StoreError as err:
            self._failed(err)

    def _failed(self, err: StoreError) -> None:
        if self.writer is not None:
            log.error("flows not written: %s; capture continues, retrying in %ds",
                      err.message, FLOW_RETRY_SECONDS)
        self.writer = None
        self.retry_at = time.monotonic() + FLOW_RETRY_SECONDS

    def __call__(self, batch) -> None:
        self.counters.flows += len(batch)
        if len(self.backlog) == self.backlog.maxlen:
            self.counters.flows_lost += len(self.backlog[0])
        self.backlog.append(batch)
        self.drain()

    def drain(self) -> None:
        if self.writer is None:
            if time.monotonic() < self.retry_at:
                return
            self._open()
            if self.writer is None:
                return
        while self.backlog:
            try:
                self.writer.put(self.backlog[0])
            except StoreError as err:
                self._close_quietly()
                self._failed(err)
                return
            self.backlog.popleft()

    def open_flows(self, stream: str, batch, as_of_ns: int) -> None:
        """Hand the meter's snapshot (``FlowMeter.snapshot``) to the writer as ``stream``'s interim
        records, written after the flows before them (call after ``drain``). Skipped while flows
        wait in the backlog, which it must not overtake: the next snapshot replaces this one."""
        if self.writer is None or self.backlog:
            return
        try:
            self.writer.put_open_flows(OpenFlows(stream, batch, as_of_ns))
        except StoreError as err:
            self._close_quietly()
            self._failed(err)

    def _close_quietly(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except StoreError:
            pass

    def close(self) -> None:
        self.drain()
        if self.writer is not None:
            try:
                self.writer.close()
            except StoreError as err:
                log.error("flows not written: %s", err.message)
        lost = self.counters.flows_lost + sum(len(b) for b in self.backlog)
        if lost:
            log.error("%d flows could not be written to the database; re-ingest the sealed files to recover them", lost)


class LiveApps:
    """The protocol parsers beside capture, in the application-layer process ``wiretrail ingest``
    uses (``recorder.core.pipeline.applayer.app_process``), writing dns, http, ssl, files, credentials...
    records into the same store.

    The meter never waits for a parser: batches go through a bounded queue to a thread that hands
    them over; a batch that finds APP_QUEUE_BYTES waiting is not parsed (its packets are counted in
    ``parser_skipped`` and stay in the capture files, where an ingest parses them). While the
    meter is behind capture (``shed``, from ``recorder.lag``) no batch is parsed, and those still
    waiting in the queue are dropped (both counted in ``parser_skipped`` and ``shed``). Records are
    flushed at each ``flush`` (the meter's process calls it every ``stream.FLOW_FLUSH_SECONDS``, or
    sooner with live detection). A flow's service is set once its row is stored (flows are
    written when they end, often after their protocol was recognised). If the parsers' process
    fails (a database outage, say), capture and flows go on without it, with one log line, and a
    new one is started at the first flush ``retry_seconds`` later (connections then in progress
    are picked up midway, as at start-up); the packets in between are counted as not parsed.

    The hardware addresses of local hosts (``mactable.MacTable``, for ``wiretrail hosts``) are taken from
    every batch in the meter's thread, parsed or not (a few numpy operations), and each new
    (address, MAC) pair is stored at the next flush, with its first sighting."""

    def __init__(self, store: Store, counters: Counters, local: LocalNets | None = None, *,
                 retry_seconds: float = FLOW_RETRY_SECONDS, inspector=None) -> None:
        self.store = store
        self.inspector = inspector  # live signatures (recorder.live_signatures), run in the parsers' process
        self.counters = counters
        self.macs: MacTable | None = MacTable(local if local is not None else LocalNets())
        self.retry_seconds = retry_seconds
        self.retry_at = 0.0
        self.proc = self._start()
        self.queue: queue.Queue = queue.Queue()
        self.queued = 0  # packet bytes in the queue
        self.lock = threading.Lock()
        self.capture_id: int | None = None
        self.failed = False
        self.shedding = False
        self.epoch = 0  # a batch queued before the last time shedding started is dropped, not parsed
        self.services: dict[str, list[str]] = {}  # uid -> services, until the flow's row is stored
        self.thread = threading.Thread(target=self._serve, name="parsers-feed", daemon=True)
        self.thread.start()

    def _start(self):
        from recorder.core.pipeline.applayer import app_process

        return app_process(self.store, warn=lambda w: log.warning("parsers: %s", w), inspector=self.inspector)

    def feed(self, raw, dec, capture_id: int | None) -> None:
        size = int(raw.caplen.sum())  # packet bytes, for the queue's bound
        with self.lock:
            if self.macs is not None:
                try:
                    self.macs.add(raw, dec, capture_id)
                except Exception as err:  # noqa: BLE001 - capture goes on whatever this does
                    log.error("MAC addresses no longer kept: %r", err)
                    self.macs = None
            if capture_id != self.capture_id:  # also for a file whose batches are all skipped (live signatures)
                self.queue.put(("capture", capture_id))
                self.capture_id = capture_id
            if self.failed:
                self.counters.parser_skipped += len(raw)
                return
            if self.shedding:
                self.counters.parser_skipped += len(raw)
                self.counters.shed += len(raw)
                return
            if self.queued + size > APP_QUEUE_BYTES and self.queued:
                self.counters.parser_skipped += len(raw)
                return
            self.queued += size
        self.queue.put(("feed", raw, dec, size, self.epoch))

    def shed(self, behind: bool) -> None:
        """Capture fell behind (True) or caught up (False): while behind, no batch goes to the
        parsers, and those already queued are dropped by the feeding thread as it comes to them
        (a few list operations each), so the parsers' process goes idle within a batch."""
        with self.lock:
            if behind and not self.shedding:
                self.epoch += 1
            self.shedding = behind

    def flush(self) -> None:
        """Ask for the records so far to be written and the services found to be stored (done by
        the thread when it comes to it); after a failure, for the parsers to be started again
        once ``retry_seconds`` have passed."""
        self.queue.put(("flush",))

    def _serve(self) -> None:
        while (item := self.queue.get()) is not None:
            try:
                if self.failed:
                    if item[0] == "flush" and time.monotonic() >= self.retry_at:
                        self._restart()
                    continue
                if item[0] == "feed":
                    if item[4] != self.epoch:  # queued before capture fell behind
                        with self.lock:
                            self.counters.parser_skipped += len(item[1])
                            self.counters.shed += len(item[1])
                        continue
                    self.proc.feed(item[1], item[2])
                elif item[0] == "capture":
                    self.proc.capture_id = item[1]
                else:
                    self._add_services(self.proc.flush())
                    self._store_services()
                    self._store_macs()
            except Exception as err:  # noqa: BLE001 - whatever stops the parsers, capture goes on
                self._fail(err)
            finally:
                if item[0] == "feed":
                    with self.lock:
                        self.queued -= item[3]

    def _fail(self, err: Exception) -> None:
        self.failed = True
        self.retry_at = time.monotonic() + self.retry_seconds
        log.error("protocol parsers stopped: %s; capture and flows go on, parsers restarted in %ds (an ingest "
                  "of the capture files gives the protocol records missed)",
                  err.message if isinstance(err, WiretrailError) else repr(err), self.retry_seconds)

    def _restart(self) -> None:
        """A new parsers' process in place of the failed one (run by the feeding thread)."""
        self.proc.close()  # the failed one ends, if it has not
        self.proc = self._start()
        self.proc.capture_id = self.capture_id
        with self.lock:
            self.failed = False
        log.warning("protocol parsers restarted")

    def _add_services(self, services) -> None:
        for uid, names in services:
            if uid and names:
                self.services.pop(uid, None)  # to the end: the oldest stay first
                self.services[uid] = names
        while len(self.services) > APP_PENDING_SERVICES:  # the oldest first
            del self.services[next(iter(self.services))]

    def _store_services(self) -> None:
        if not self.services:
            return
        from recorder.core.store.records import stored_uids, update_services

        try:
            found = stored_uids(self.store, self.services)
            update_services(self.store, ((uid, self.services.pop(uid)) for uid in found))
        except StoreError as err:
            log.error("flow services not stored: %s", err.message)

    def _store_macs(self) -> None:
        with self.lock:
            records = self.macs.take_new() if self.macs is not None else []
        if not records:
            return
        from recorder.core.store.records import add_mac_records

        try:
            add_mac_records(self.store, records)
        except StoreError as err:
            log.error("MAC addresses not stored: %s", err.message)

    def close(self) -> None:
        """After the flows are written: the parsers end every connection, their last records are
        written and the services and MAC addresses stored."""
        self.queue.put(None)
        self.thread.join()
        if self.failed:
            self.proc.close()
            return
        try:
            self.proc.finish()
            self._add_services(self.proc.services())
            self._store_services()
            self._store_macs()
        except WiretrailError as err:
            self._fail(err)
            self.proc.close()
