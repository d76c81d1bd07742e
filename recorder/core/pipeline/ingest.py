"""Offline ingest: capture files -> decoder -> flow meter -> store.

The same decoder and flow meter run in the live recorder, so an ingest of the files the recorder
sealed reproduces the flows it recorded.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recorder.core.capio.pcapio import expand_inputs, probe, read_batches
from recorder.core.capio.pcaprecords import skipped_fields
from recorder.core.decode.decode import Decoder
from recorder.core.decode.mactable import MacTable
from recorder.core.errors import CaptureError, CaptureWarning, StoreError
from recorder.core.flow.flowid import LocalNets
from recorder.core.flow.flowmeter import FlowMeter, Timeouts
from recorder.core.flow.flowrows import FlowBatch
from recorder.core.flow.indexformat import indexed_header
from recorder.core.flow.packetindex import IndexBuilder, PendingIndex
from recorder.core.pipeline.applayer import Inspectors, open_app_layer

GC_THRESHOLD = 100_000  # allocations between young-generation collections while parsers run


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
        out, apps, inspection = open_app_layer(store, parsers, extract_dir, app_layer, warn, inspector)
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
            cause = inspection.error() if isinstance(inspection, Inspectors) else None
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
