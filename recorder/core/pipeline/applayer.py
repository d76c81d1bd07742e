"""The application layer of an ingest (and of the recorder's parsers' process): where it runs.

``open_app_layer`` picks it for an ingest: in this process, or, when there is a second core, in
a child process (``AppProcess``: the protocol parsers and their store output), with an inspector
(the rule engine) in one more process or one per shard of the flows (``InspectorProcess``,
driven together as ``Inspectors``), the parsers' messages going straight to them
(``Forwarder``). ``app_process`` is the parsers' process for the recorder.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from collections.abc import Callable

import numpy as np

from recorder.core.errors import WiretrailError
from recorder.core.pipeline.batches import Batch, SpanReader, batch_message
from recorder.core.pipeline.child import Child, Family, Inbox, Outbox

APP_PROCESS = True  # run the application layer in its own process when there is a second core
MAX_INSPECTOR_SHARDS = 8  # a shardable inspector (apps.inspection) runs in one process per core, up to this


def open_app_layer(store, parsers: bool, extract_dir: str | None, factory: Callable | None,
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
    if factory is None and APP_PROCESS and cores() > 1:
        if inspector is None:
            remote = AppProcess(store, extract_dir, warn)
            return remote, remote, None
        # three processes or more: this one decodes and meters, one parses, and one inspects, or
        # one per core when the inspector can be sharded by flow; the parsers' messages go
        # straight from the second to the inspectors
        shards = min(cores(), MAX_INSPECTOR_SHARDS) if hasattr(inspector, "shard") else 1
        family = Family()  # which process closes which pipe end: decided there
        pipes = [family.pipe() for _ in range(shards)]
        from_parsers, to_inspectors = [r for r, _ in pipes], [s for _, s in pipes]
        remote = AppProcess(store, extract_dir, warn, forward=to_inspectors, family=family)
        procs = [InspectorProcess(inspector.shard(k, shards) if shards > 1 else inspector, from_parsers[k], warn,
                                   family, shard=(k, shards) if shards > 1 else None) for k in range(shards)]
        return remote, remote, Inspectors(inspector, procs)
    out = StoreOutput(store, extract_dir=extract_dir, on_warning=warn, background=True, bulk=True)
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


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class AppProcess:
    """The application layer (``AppLayer`` and its ``StoreOutput``) in a child process, so that it
    runs beside the decoder and flow meter on the second core: each batch's packet columns go
    over a pipe, its packets' bytes too unless the child reads them from the capture file
    (``batch_message``). It stands for both the layer and its output in ``_ingest`` (``feed``,
    ``failures``, ``finish``, ``services``; ``capture_id``, ``close``, ``rows_written``). An error
    in the child is raised as StoreError (a database problem) or WiretrailError by the next call."""

    def __init__(self, store, extract_dir: str | None, warn: Callable[[str], None], forward=None,
                 family: Family | None = None, inspector=None, bulk: bool = True) -> None:
        self.store = store
        self.rows_written: Counter[str] = Counter()
        self._failures: Counter[str] = Counter()
        self._services: list[tuple[str, list[str]]] = []
        self._done = False
        self._child = Child(_app_main, (store, extract_dir, forward, inspector, bulk), name="wiretrail-app-layer",
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


def _app_main(inbox: Inbox, outbox: Outbox, store, extract_dir: str | None, forward, inspector=None,
              bulk: bool = True) -> None:
    """The application layer's process: batches from ``inbox`` through ``AppLayer`` into the store;
    with ``forward`` (pipes to the ``InspectorProcess``es) the parsers' messages go there too;
    with ``inspector`` (``app_process``) they go to it, here, told of each new capture id by its
    ``capture(id)`` and of each flush by its ``flush()``, if it has them."""
    from recorder.core.apps.dispatch import AppLayer
    from recorder.core.apps.inspection import Inspection
    from recorder.core.apps.registry import PARSERS
    from recorder.core.store.records import StoreOutput

    store.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
    out = None
    try:
        out = StoreOutput(store, extract_dir=extract_dir, on_warning=outbox.warnings.append, background=True,
                          bulk=bulk)
        local = Forwarder(forward) if forward is not None else inspector
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


def app_process(store, warn: Callable[[str], None], inspector=None) -> AppProcess:
    """The protocol parsers in their own process, writing their records into ``store``, for a
    caller that feeds batches itself (the recorder): ``feed(raw, dec)``, ``capture_id = id``,
    ``flush()``, ``finish()``, ``services()``, ``failures``, ``close()``. ``inspector`` (an
    ``apps.inspection.Inspector``, such as the recorder's live signatures) runs in that process,
    on every batch and the parsers' messages, as in an ingest's pass; it handles its own results."""
    return AppProcess(store, None, warn, inspector=inspector, bulk=False)  # a writer for weeks: indexes kept


class Forwarder:
    """An inspector in the application layer's process that passes the parsers' messages (and the
    connections they recognised) to every ``InspectorProcess``, one pickle per batch for all."""

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


class InspectorProcess:
    """An inspector (``ingest(..., inspector=)``) in a process of its own, beside the application
    layer's: each batch comes from this process (as to ``AppProcess``), the parsers' messages for
    it from the application layer's process (``Forwarder``). Same interface as ``Inspection``:
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


class Inspectors:
    """The inspector's processes (one, or one per shard of the flows; ``apps.inspection``), driven
    as an ``Inspection``: ``feed(raw, dec)``, ``finish()`` (the inspector's result, the shards'
    merged), ``close()`` and, after it, ``error()``."""

    def __init__(self, inspector, procs: list[InspectorProcess]) -> None:
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
