"""Offline ingest: capture files -> decoder -> flow meter -> store.

The same decoder and flow meter run in the live recorder, so an ingest of the files the recorder
sealed reproduces the flows it recorded.
"""

from __future__ import annotations

import gc
import hashlib
import os
import pickle
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recorder.core.decode import Decoder
from recorder.core.errors import CaptureError, CaptureWarning, StoreError, WiretrailError
from recorder.core.flowid import LocalNets
from recorder.core.flowmeter import FlowMeter, Timeouts
from recorder.core.flowrows import FlowBatch
from recorder.core.indexformat import indexed_header
from recorder.core.mactable import MacTable
from recorder.core.packetindex import IndexBuilder, PendingIndex
from recorder.core.pcapio import expand_inputs, probe, read_batches
from recorder.core.pcaprecords import skipped_fields
from recorder.core.pipeline.batches import Batch, SpanReader, batch_message
from recorder.core.pipeline.child import Child, Family, Inbox, Outbox

GC_THRESHOLD = 100_000  # allocations between young-generation collections while parsers run
APP_PROCESS = True  # run the application layer in its own process when there is a second core
MAX_INSPECTOR_SHARDS = 8  # a shardable inspector (apps.inspection) runs in one process per core, up to this


@dataclass
class FileResult:
    path: str
    capture_id: int | None
    packets: int = 0
    malformed: int = 0
    skipped_reason: str | None = None  # set when the file was not ingested (already in the store)


@dataclass
class IngestStats:
    files: list[FileResult] = field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    flows: int = 0
    malformed: int = 0
    non_ip: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    app_records: int = 0  # protocol records stored (dns, http, ..., files, credentials, names)
    parser_failures: int = 0
    inspected: Any = None  # what the inspector's finish returned (``ingest(..., inspector=)``)

    @property
    def packets_per_second(self) -> float:
        return self.packets / self.seconds if self.seconds > 0 else 0.0


class _Hasher(threading.Thread):
    """SHA-256 of a capture file, on a second core (hashlib releases the GIL on large updates)."""

    def __init__(self, path: str) -> None:
        super().__init__(name="wiretrail-sha256", daemon=True)
        self.path = path
        self._digest: str | None = None
        self._error: OSError | None = None

    def run(self) -> None:
        try:
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                while chunk := f.read(4 << 20):
                    h.update(chunk)
            self._digest = h.hexdigest()
        except OSError as err:
            self._error = err

    def result(self) -> str:
        if self._error is not None:
            raise CaptureError(f"cannot read: {self._error.strerror or self._error}", path=self.path)
        assert self._digest is not None
        return self._digest


def ingest(paths: list[str], store, *, local_nets: list[str] | None = None,
           timeouts: Timeouts | None = None, fast: bool = True,
           progress: Callable[[int, int], None] | None = None,
           on_warning: Callable[[str], None] | None = None, parsers: bool = True,
           extract_dir: str | None = None, app_layer: Callable | None = None,
           inspector=None, identities=None) -> IngestStats:
    """Ingest capture files (files, directories or globs) into ``store``.

    Files are read in time order and metered as one stream, so a connection that spans rotated
    files is one flow, attributed to the file and offset of its first packet. A file already in
    the store (same SHA-256) is skipped. Raises CaptureError for a file that is not a capture.

    With ``parsers`` the application layer runs too (``apps.dispatch``): protocol records go to
    their tables, flows get their ``service``; ``extract_dir`` receives every transferred file.
    ``app_layer(out)`` builds the application layer instead of ``AppLayer(out, PARSERS)`` (tests).

    ``inspector`` (``apps.inspection.Inspector``, such as the rule engine) sees every decoded batch
    and the parsers' messages in the same pass, in the application layer's process when there is
    one; what its ``finish`` returns is ``IngestStats.inspected``. It sees only the files ingested
    here, not those skipped as already in the store.

    ``identities`` (age) open encrypted inputs (``pipeline.encrypted``).
    """
    import tempfile

    from recorder.core.pipeline.encrypted import decrypt_inputs

    with tempfile.TemporaryDirectory(prefix="wiretrail-decrypted-") as tmp:  # 0700
        paths, originals = decrypt_inputs(paths, identities, tmp)
        return _ingest_gc(paths, store, local_nets, timeouts, fast, progress, on_warning, parsers, extract_dir,
                          app_layer, inspector, originals)


def _ingest_gc(paths, store, local_nets, timeouts, fast, progress, on_warning, parsers, extract_dir, app_layer,
               inspector, originals) -> IngestStats:
    args = (paths, store, local_nets, timeouts, fast, progress, on_warning, parsers, extract_dir, app_layer,
            inspector, originals)
    if not parsers:
        return _ingest(*args)
    # The application layer keeps many objects alive (connections, parser state, buffered records):
    # with the default thresholds the cyclic collector would rescan them ever so often, a sixth
    # of the ingest's time. Collections are made rarer while it runs.
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], GC_THRESHOLD), max(old[1], 50), max(old[2], 1000))
    try:
        return _ingest(*args)
    finally:
        gc.set_threshold(*old)


def _ingest(paths: list[str], store, local_nets: list[str] | None, timeouts: Timeouts | None, fast: bool,
            progress: Callable[[int, int], None] | None, on_warning: Callable[[str], None] | None, parsers: bool,
            extract_dir: str | None, app_layer: Callable | None, inspector,
            originals: dict[str, str]) -> IngestStats:
    files = expand_inputs(paths)
    stats = IngestStats()
    t0 = time.perf_counter()
    writer = store.flow_writer()
    local = LocalNets(local_nets)
    meter = FlowMeter(writer.put, local_nets=local, timeouts=timeouts or Timeouts())
    macs = MacTable(local) if parsers else None  # host metadata, as the protocol logs: with parsers
    decoder = Decoder(fast=fast)

    def warn(w: CaptureWarning | str) -> None:
        stats.warnings.append(str(w))
        if on_warning:
            on_warning(str(w))

    out = apps = inspection = None
    failures: dict[int | None, Counter] = {}
    seen_failures: Counter = Counter()
    capture_ids: list[int] = []

    def count_failures(capture_id: int | None) -> None:  # attribute new parser failures to a capture
        if apps is not None:
            now = Counter(apps.failures)
            failures.setdefault(capture_id, Counter()).update(now - seen_failures)
            seen_failures.clear()
            seen_failures.update(now)

    try:
        out, apps, inspection = _app_layer(store, parsers, extract_dir, app_layer, warn, inspector)
        for path in files:
            info = probe(path)
            stored = originals.get(path, path)  # the encrypted file, for one decrypted here
            size = os.path.getsize(stored)
            # A file already in the store is skipped. Only a stored capture of the same size can be
            # the same file, so only then is the hash needed before reading; otherwise it is
            # computed on the second core while the file is metered.
            hasher = _Hasher(stored)
            if store.captures(size=size):
                hasher.run()
                dup = store.capture_by_sha256(hasher.result())
                if dup is not None:
                    stats.files.append(FileResult(stored, dup["id"],
                                                  skipped_reason=f"already ingested as capture {dup['id']}"))
                    continue
            else:
                hasher.start()
            capture_id = store.add_capture(path=os.path.abspath(stored), format=info.format,
                                           link_types=",".join(str(x) for x in info.linktypes), bytes=size)
            res = FileResult(stored, capture_id)
            capture_ids.append(capture_id)
            if out is not None:
                out.capture_id = capture_id
            first_ts = last_ts = None
            header = indexed_header(info.format)  # None for gzip: no offsets to seek to
            index = IndexBuilder(header=header) if header is not None else None
            skipped: list[tuple[int, int]] = []  # byte ranges the reader skipped over damage
            for raw in read_batches(path, on_warning=lambda w, s=skipped: (s.extend(getattr(w, "skipped", ())), warn(w))):
                dec = decoder.decode(raw)
                meter.add(raw, dec, capture_id, decoder.tunnels)
                if index is not None:
                    index.add(raw, dec)
                if macs is not None:
                    macs.add(raw, dec, capture_id)
                if apps is not None:
                    apps.feed(raw, dec)
                if inspection is not None:
                    inspection.feed(raw, dec)
                n = len(raw)
                res.packets += n
                res.malformed += dec.malformed
                stats.non_ip += dec.non_ip
                if n:
                    first_ts = int(raw.ts[0]) if first_ts is None else first_ts
                    last_ts = int(raw.ts[-1])
                if progress:
                    progress(n, int(raw.caplen.sum()) + 16 * n)
            if hasher.ident is not None:  # started as a thread (not run in place above)
                hasher.join()
            store.update_capture(capture_id, sha256=hasher.result(), first_ts_ns=first_ts, last_ts_ns=last_ts,
                                 packets=res.packets, malformed=res.malformed, **skipped_fields(skipped))
            if index is not None:  # sorted, encoded and stored by the flow writer's process
                writer.put_index(PendingIndex(capture_id, index))
            stats.files.append(res)
            count_failures(capture_id)
            stats.packets += res.packets
            stats.malformed += res.malformed
            stats.bytes += size
        # The connections still open are flushed now, while the writer may still be busy: the
        # reading side is idle, so it formats these rows itself, in chunks the writer can start on.
        def put_formatted(fb: FlowBatch) -> None:
            for i in range(0, len(fb), 5000):
                writer.put(fb.slice(i, i + 5000).rows())

        meter.sink = put_formatted
        meter.finish()
        if apps is not None:
            apps.finish()
            count_failures(capture_ids[-1] if capture_ids else None)
            out.close()
        if inspection is not None:
            stats.inspected = inspection.finish()
    except BaseException:
        try:  # keep what was handed over, but report the error that stopped the ingest
            writer.close()
            _store_macs(store, macs)
        except StoreError:
            pass
        if out is not None:
            try:
                out.close()
            except StoreError:
                pass
        if inspection is not None:
            inspection.close()
            cause = inspection.error() if isinstance(inspection, _Inspectors) else None
            if cause is not None:  # the inspector failed first: the parsers only lost their reader
                raise cause from None
        raise
    writer.close()
    _store_macs(store, macs)
    stats.flows = meter.flows_out
    if apps is not None:
        from recorder.core.store.records import record_failures, update_services

        update_services(store, apps.services())  # the flows are all written now
        record_failures(store, failures)
        stats.app_records = sum(out.rows_written.values())
        stats.parser_failures = sum(sum(c.values()) for c in failures.values())
    stats.seconds = time.perf_counter() - t0
    return stats


def _store_macs(store, macs: MacTable | None) -> None:
    """The (local address, MAC) pairs seen, into the ``macs`` table."""
    if macs is not None:
        from recorder.core.store.records import add_mac_records

        add_mac_records(store, macs.records())


def _app_layer(store, parsers: bool, extract_dir: str | None, factory: Callable | None,
               warn: Callable[[str], None], inspector=None):
    """The application layer's output (records into ``store``), the layer and the inspection
    driving ``inspector``; None for what is not needed."""
    from recorder.core.apps.inspection import Inspection

    if not parsers:
        return None, None, (Inspection(inspector) if inspector is not None else None)
    from recorder.core.store.records import StoreOutput

    if extract_dir is not None:
        try:
            os.makedirs(extract_dir, mode=0o700, exist_ok=True)  # new: owner-only, as the files
        except OSError as err:
            raise WiretrailError(f"cannot create the extraction directory: {err.strerror or err}",
                                 path=extract_dir) from err
    if factory is None and APP_PROCESS and _cores() > 1:
        if inspector is None:
            remote = _AppProcess(store, extract_dir, warn)
            return remote, remote, None
        # three processes or more: this one decodes and meters, one parses, and one inspects, or
        # one per core when the inspector can be sharded by flow; the parsers' messages go
        # straight from the second to the inspectors
        shards = min(_cores(), MAX_INSPECTOR_SHARDS) if hasattr(inspector, "shard") else 1
        family = Family()  # which process closes which pipe end: decided there
        pipes = [family.pipe() for _ in range(shards)]
        from_parsers, to_inspectors = [r for r, _ in pipes], [s for _, s in pipes]
        remote = _AppProcess(store, extract_dir, warn, forward=to_inspectors, family=family)
        procs = [_InspectorProcess(inspector.shard(k, shards) if shards > 1 else inspector, from_parsers[k], warn,
                                   family, shard=(k, shards) if shards > 1 else None) for k in range(shards)]
        return remote, remote, _Inspectors(inspector, procs)
    out = StoreOutput(store, extract_dir=extract_dir, on_warning=warn, background=True)
    inspection = Inspection(inspector, out) if inspector is not None else None
    apps_out = inspection.output if inspection is not None else out
    if factory is not None:
        apps = factory(apps_out)
    else:
        from recorder.core.apps.dispatch import AppLayer
        from recorder.core.apps.registry import PARSERS

        apps = AppLayer(apps_out, PARSERS)
    if inspection is not None:
        inspection.attach(apps)
    return out, apps, inspection


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _AppProcess:
    """The application layer (``AppLayer`` and its ``StoreOutput``) in a child process, so that it
    runs beside the decoder and flow meter on the second core: each batch's packet columns go
    over a pipe, its packets' bytes too unless the child reads them from the capture file
    (``batch_message``). It stands for both the layer and its output in ``_ingest`` (``feed``,
    ``failures``, ``finish``, ``services``; ``capture_id``, ``close``, ``rows_written``). An error
    in the child is raised as StoreError (a database problem) or WiretrailError by the next call."""

    def __init__(self, store, extract_dir: str | None, warn: Callable[[str], None], forward=None,
                 family: Family | None = None, inspector=None) -> None:
        self.store = store
        self.rows_written: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._services: list[tuple[str, list[str]]] = []
        self._done = False
        self._child = Child(_app_main, (store, extract_dir, forward, inspector), name="wiretrail-app-layer",
                            family=family,
                            daemon=False,  # not daemonic: it starts the record writer
                            wide=True, hand_over=forward or (),
                            failure=lambda err: WiretrailError(f"application layer failed: {err!r}"),
                            ended=WiretrailError("the application layer process ended unexpectedly"),
                            store_path=store.display, on_warning=warn)

    @property
    def process(self):
        """The child process (``multiprocessing.Process``)."""
        return self._child.process

    def _put(self, item: tuple) -> None:
        self._child.send_object(item)

    @property
    def capture_id(self) -> int | None:
        return None

    @capture_id.setter
    def capture_id(self, value: int | None) -> None:
        self._put(("capture", value))

    def feed(self, raw, dec) -> None:
        self._child.check()
        head, data = batch_message(raw, dec)
        self._child.send(head)
        if data is not None:
            self._child.send(data)  # the packet bytes as they are (not copied into a pickle)

    @property
    def failures(self) -> Counter[str]:
        """Parser failures so far (waits for the child to catch up)."""
        if not self._done:
            self._put(("failures",))
            self._failures = self._child.reply()
        return self._failures

    def flush(self) -> list[tuple[str, list[str]]]:
        """The records so far on their way to the store; the services recognised since the last
        flush (``AppLayer.take_services``). For a long-running caller (the recorder)."""
        self._put(("flush",))
        return self._child.reply()

    def finish(self) -> None:
        self._put(("finish",))
        self._failures, self._services, written = self._child.reply()
        self.rows_written.update(written)
        self._done = True
        self._child.join()

    def services(self) -> list[tuple[str, list[str]]]:
        return self._services

    def close(self) -> None:
        """After ``finish``: nothing. Before (the ingest stopped): the child writes what it has and ends."""
        self._child.join()


def _app_main(inbox: Inbox, outbox: Outbox, store, extract_dir: str | None, forward, inspector=None) -> None:
    """The application layer's process: batches from ``inbox`` through ``AppLayer`` into the store;
    with ``forward`` (pipes to the ``_InspectorProcess``es) the parsers' messages go there too;
    with ``inspector`` (``app_process``) they go to it, here, told of each new capture id by its
    ``capture(id)`` and of each flush by its ``flush()``, if it has them."""
    from recorder.core.apps.dispatch import AppLayer
    from recorder.core.apps.inspection import Inspection
    from recorder.core.apps.registry import PARSERS
    from recorder.core.store.records import StoreOutput

    store.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    out = None
    try:
        out = StoreOutput(store, extract_dir=extract_dir, on_warning=outbox.warnings.append, background=True)
        local = _Forwarder(forward) if forward is not None else inspector
        inspection = Inspection(local, out) if local is not None else None
        apps = AppLayer(inspection.output if inspection is not None else out, PARSERS)
        if inspection is not None:
            inspection.attach(apps)
        reader = SpanReader()
        for message in inbox:  # until the ingest stops early (keep what was handed over) or ends
            item = pickle.loads(message)
            kind = item[0]
            if kind == "feed":
                _, n, ts, cols, payloads, span = item
                data = reader.data(span, inbox)
                raw, dec = Batch(n, ts=ts, data=data), Batch(len(cols["pkt"]), cols=cols, payloads=payloads)
                apps.feed(raw, dec)
                if inspection is not None:
                    inspection.feed(raw, dec)
            elif kind == "capture":
                out.capture_id = item[1]
                if inspector is not None and hasattr(inspector, "capture"):
                    inspector.capture(item[1])
            elif kind == "failures":
                outbox.send("ok", Counter(apps.failures))
            elif kind == "flush":
                out.flush()
                if inspector is not None and hasattr(inspector, "flush"):
                    inspector.flush()
                outbox.send("ok", apps.take_services())
            elif kind == "finish":
                apps.finish()
                if inspection is not None:
                    inspection.finish()
                out.close()
                outbox.send("ok", (Counter(apps.failures), list(apps.services()), dict(out.rows_written)))
                return
        out.close()
    except BaseException as err:  # noqa: BLE001 - reported to the parent, one line
        outbox.error(err)
        if out is not None:
            try:  # the records handed over so far are kept, as far as the store takes them
                out.close()
            except BaseException:  # noqa: BLE001 - the first error is the one reported
                pass


def app_process(store, warn: Callable[[str], None], inspector=None) -> _AppProcess:
    """The protocol parsers in their own process, writing their records into ``store``, for a
    caller that feeds batches itself (the recorder): ``feed(raw, dec)``, ``capture_id = id``,
    ``flush()``, ``finish()``, ``services()``, ``failures``, ``close()``. ``inspector`` (an
    ``apps.inspection.Inspector``, such as the recorder's live signatures) runs in that process,
    on every batch and the parsers' messages, as in an ingest's pass; it handles its own results."""
    return _AppProcess(store, None, warn, inspector=inspector)


class _Forwarder:
    """An inspector in the application layer's process that passes the parsers' messages (and the
    connections they recognised) to every ``_InspectorProcess``, one pickle per batch for all."""

    def __init__(self, sends: list) -> None:
        self._sends = sends

    def _send(self, item: tuple) -> None:
        data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
        for send in self._sends:
            send.send_bytes(data)

    def feed(self, raw, dec, messages: list, recognised: list) -> None:
        self._send(("feed", messages, recognised))

    def finish(self, messages: list) -> None:
        self._send(("finish", messages, []))


class _InspectorProcess:
    """An inspector (``ingest(..., inspector=)``) in a process of its own, beside the application
    layer's: each batch comes from this process (as to ``_AppProcess``), the parsers' messages for
    it from the application layer's process (``_Forwarder``). Same interface as ``Inspection``:
    ``feed(raw, dec)`` and ``finish()``, which returns what the inspector's finish returned. An
    error there is raised here by the next call."""

    def __init__(self, inspector, messages, warn: Callable[[str], None], family: Family,
                 shard: tuple[int, int] | None = None) -> None:
        self._child = Child(_inspector_main, (inspector, messages, shard), name="wiretrail-inspector",
                            family=family, wide=True, hand_over=[messages],
                            failure=lambda err: WiretrailError(f"inspection failed: {err!r}"),
                            ended=WiretrailError("the inspection process ended unexpectedly"), on_warning=warn)

    def feed(self, head: bytes, data: bytes | None) -> None:
        """One batch: its pickled head and its packets' bytes, or None (``batch_message``)."""
        self._child.check()
        self._child.send(head)
        if data is not None:
            self._child.send(data)

    def finish(self):
        """The result (the inspector finishes when the parsers' last messages reach it)."""
        try:
            return self._child.reply()
        finally:
            self.close()

    def close(self) -> None:
        self._child.join()

    def error(self) -> WiretrailError | None:
        """After ``close``: the error the inspector reported and nobody read yet, if it failed."""
        return self._child.pending_error()


class _Inspectors:
    """The inspector's processes (one, or one per shard of the flows; ``apps.inspection``), driven
    as an ``Inspection``: ``feed(raw, dec)``, ``finish()`` (the inspector's result, the shards'
    merged), ``close()`` and, after it, ``error()``."""

    def __init__(self, inspector, procs: list[_InspectorProcess]) -> None:
        self.inspector = inspector
        self.procs = procs

    def feed(self, raw, dec) -> None:
        head, data = batch_message(raw, dec)
        for p in self.procs:
            p.feed(head, data)

    def finish(self):
        try:
            results = [p.finish() for p in self.procs]
        finally:
            self.close()
        return results[0] if len(results) == 1 else self.inspector.merge(results)

    def close(self) -> None:
        for p in self.procs:
            p.close()

    def error(self) -> WiretrailError | None:
        for p in self.procs:
            err = p.error()
            if err is not None:
                return err
        return None


def _shard_batch(cols: dict, payloads: dict, k: int, n: int) -> tuple[dict, dict]:
    """The rows of a decoded batch in shard ``k`` of ``n`` (``apps.inspection.shard_rows``)."""
    from recorder.core.apps.inspection import shard_rows

    which = shard_rows(cols, n)
    keep = np.flatnonzero(which == k)
    if payloads:  # keyed by row: renumbered as the rows kept are
        mine = sorted(i for i in payloads if which[i] == k)
        payloads = dict(zip(np.searchsorted(keep, mine).tolist(), (payloads[i] for i in mine)))
    return {c: v[keep] for c, v in cols.items()}, payloads


def _inspector_main(inbox: Inbox, outbox: Outbox, inspector, messages, shard: tuple[int, int] | None) -> None:
    """The inspector's process: batches from ``inbox``, the parsers' messages for each from
    ``messages``; with ``shard`` (k, n), only what belongs to the k-th of n shares of the flows."""
    from recorder.core.apps.inspection import shard_of

    reader = SpanReader()
    while True:  # paced by the parsers' messages: their "finish" ends the input
        try:
            kind, msgs, recognised = pickle.loads(messages.recv_bytes())
        except (EOFError, OSError):
            return  # the ingest stopped early
        if shard is not None:
            k, parts = shard
            msgs = [m for m in msgs if shard_of(m[1], m[2], m[3], m[4], m[5], parts) == k]
            recognised = [r for r in recognised if shard_of(r[0], r[1], r[2], r[3], r[4], parts) == k]
        if kind == "finish":
            outbox.send("ok", inspector.finish(msgs))
            return
        _, n, ts, cols, payloads, span = pickle.loads(inbox.get())
        data = reader.data(span, inbox)
        if shard is not None:
            cols, payloads = _shard_batch(cols, payloads, *shard)
        inspector.feed(Batch(n, ts=ts, data=data), Batch(len(cols["pkt"]), cols=cols, payloads=payloads),
                       msgs, recognised)
