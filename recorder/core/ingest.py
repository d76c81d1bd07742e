"""Offline ingest: capture files -> decoder -> flow meter -> store.

The same decoder and flow meter run in the live recorder, so an ingest of the files the recorder
sealed reproduces the flows it recorded.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from recorder.core.decode import Decoder
from recorder.core.errors import CaptureError, CaptureWarning, StoreError, WiretrailError
from recorder.core.flowid import LocalNets
from recorder.core.flowmeter import FlowMeter, Timeouts
from recorder.core.flowrows import FlowBatch
from recorder.core.pcapio import expand_inputs, probe, read_batches


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
           extract_dir: str | None = None, app_layer: Callable | None = None) -> IngestStats:
    """Ingest capture files (files, directories or globs) into ``store``.

    Files are read in time order and metered as one stream, so a connection that spans rotated
    files is one flow, attributed to the file and offset of its first packet. A file already in
    the store (same SHA-256) is skipped. Raises CaptureError for a file that is not a capture.

    With ``parsers`` the application layer runs too (``apps.dispatch``): protocol records go to
    their tables, flows get their ``service``; ``extract_dir`` receives every transferred file.
    ``app_layer(out)`` builds the application layer instead of ``AppLayer(out, PARSERS)`` (tests).
    """
    files = expand_inputs(paths)
    stats = IngestStats()
    t0 = time.perf_counter()
    writer = store.flow_writer()
    meter = FlowMeter(writer.put, local_nets=LocalNets(local_nets), timeouts=timeouts or Timeouts())
    decoder = Decoder(fast=fast)

    def warn(w: CaptureWarning | str) -> None:
        stats.warnings.append(str(w))
        if on_warning:
            on_warning(str(w))

    out = apps = None
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
        out, apps = _app_layer(store, parsers, extract_dir, app_layer, warn)
        for path in files:
            info = probe(path)
            size = os.path.getsize(path)
            # A file already in the store is skipped. Only a stored capture of the same size can be
            # the same file, so only then is the hash needed before reading; otherwise it is
            # computed on the second core while the file is metered.
            hasher = _Hasher(path)
            if store.captures(size=size):
                hasher.run()
                dup = store.capture_by_sha256(hasher.result())
                if dup is not None:
                    stats.files.append(FileResult(path, dup["id"],
                                                  skipped_reason=f"already ingested as capture {dup['id']}"))
                    continue
            else:
                hasher.start()
            capture_id = store.add_capture(path=os.path.abspath(path), format=info.format,
                                           link_types=",".join(str(x) for x in info.linktypes), bytes=size)
            res = FileResult(path, capture_id)
            capture_ids.append(capture_id)
            if out is not None:
                out.capture_id = capture_id
            first_ts = last_ts = None
            for raw in read_batches(path, on_warning=warn):
                dec = decoder.decode(raw)
                meter.add(raw, dec, capture_id, decoder.tunnels)
                if apps is not None:
                    apps.feed(raw, dec)
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
                                 packets=res.packets, malformed=res.malformed)
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
    except BaseException:
        try:  # keep what was handed over, but report the error that stopped the ingest
            writer.close()
        except StoreError:
            pass
        raise
    writer.close()
    stats.flows = meter.flows_out
    if apps is not None:
        from recorder.core.appstore import record_failures, update_services

        update_services(store, apps.services())  # the flows are all written now
        record_failures(store, failures)
        stats.app_records = sum(out.rows_written.values())
        stats.parser_failures = sum(sum(c.values()) for c in failures.values())
    stats.seconds = time.perf_counter() - t0
    return stats


def _app_layer(store, parsers: bool, extract_dir: str | None, factory: Callable | None,
               warn: Callable[[str], None]):
    """The application layer's output (records into ``store``) and the layer, or (None, None)."""
    if not parsers:
        return None, None
    from recorder.core.appstore import StoreOutput

    if extract_dir is not None:
        try:
            os.makedirs(extract_dir, exist_ok=True)
        except OSError as err:
            raise WiretrailError(f"cannot create the extraction directory: {err.strerror or err}",
                                 path=extract_dir) from err
    out = StoreOutput(store, extract_dir=extract_dir, on_warning=warn)
    if factory is not None:
        return out, factory(out)
    from recorder.core.apps.dispatch import AppLayer
    from recorder.core.apps.registry import PARSERS

    return out, AppLayer(out, PARSERS)
