"""One capture stream: one libpcap handle (an interface, or one worker of an interface's
PACKET_FANOUT group) with its own files, prefixed ``<sensor>-<interface>[-w<N>]``, and its own
hash chain. This process only captures and writes; everything else a packet goes through runs
in the meter's process, at a lower CPU priority (``recorder.metering``). ``Stream.run`` loops:

    raw = capture.read(READ_BATCH)      up to READ_BATCH (16384) packets, or None after the
                                        handle's 100 ms read timeout without any
    lag.update(...)                     how long its last packet waited in the kernel ring (the
                                        stats line's capture lag)
    writer.write(raw)                   in the writer thread, into the open file (split at the
                                        size limit), while the next batch is read
    metering.batch(raw, segments)       once its write has finished, with the files it landed in:
                                        to the meter's process (decode, flow meter, packet index,
                                        protocol parsers, live signatures), which may lag in a burst
    writer.tick(), retention, flush and interim messages to the meter, watchdog, stats

A file is sealed (fsync, SHA-256 in the stream's hash chain, rename) at rotation and on stop
(``Stream._on_seal``); files a crash left unsealed are repaired and sealed at start. Lack of
space: retention deletes the oldest sealed files; if nothing is left to delete, capture pauses
(packets are read and counted as dropped) with one log line, and resumes when a write succeeds
again."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from recorder.capture import CaptureStats, LiveCapture
from recorder.core.agecrypt import SUFFIX as AGE_SUFFIX
from recorder.core.agecrypt import recipient_or_none
from recorder.core.capio.pcaprecords import describe
from recorder.core.capio.pcapwrite import repair_pcap
from recorder.core.config import Config
from recorder.core.errors import WiretrailError
from recorder.core.evidence import GENESIS, chain_hash, file_sha256
from recorder.core.secretseal import sealer_for
from recorder.core.secure_files import GROUP_READ
from recorder.core.store import Store
from recorder.indexing import StreamIndex
from recorder.lag import Behind, CaptureLag
from recorder.live_flows import flush_seconds
from recorder.metering import Metering
from recorder.retention import Limits, enforce
from recorder.rotation import PART, DiskFull, RotatingWriter, SealedFile, seal_encrypted_leftover
from recorder.sdnotify import sd_notify
from recorder.sinks import Counters

log = logging.getLogger("wiretrail-recorder")

PAUSE_CHECK_SECONDS = 1.0
RETENTION_EVERY_SECONDS = 10.0
FLOW_FLUSH_SECONDS = 5.0
# Read by the live detection thread and its notifier at start: a change takes a restart.
LIVE_SETTINGS = ("rules", "skip_invalid", "var", "detect_interval", "detect_window", "notify_smtp_url", "notify_from", "notify_to",
                 "notify_webhook", "notify_webhook_format", "notify_min_severity", "notify_aggregate",
                 "notify_digest", "notify_rate_limit")
READ_BATCH = 16384  # packets per libpcap read at most (bigger batches meter faster)
DRAIN_SECONDS = 10.0  # at most this long writing what the kernel still holds when told to stop


@dataclass(frozen=True, slots=True)
class StreamSpec:
    interface: str
    worker: int | None  # None: the interface's only stream
    fanout_group: int | None

    @property
    def name(self) -> str:
        return self.interface if self.worker is None else f"{self.interface}/w{self.worker}"

    def prefix(self, sensor: str) -> str:
        base = f"{sensor}-{self.interface}" + ("" if self.worker is None else f"-w{self.worker}")
        return re.sub(r"[^A-Za-z0-9_.@+-]", "_", base)



class Stream:
    def __init__(self, config: Config, spec: StreamSpec, *, reload=None, ready=None, watchdog: bool = False,
                 inspect=None, behind: Behind | None = None, slot: int = 0) -> None:
        self.config = config
        self.behind, self.slot = behind, slot  # this stream's flag in the flags the detection thread reads
        self.lag = CaptureLag()
        self.inspect = inspect  # live signatures' inspector factory (recorder.live_signatures)
        self.spec = spec
        self.sensor = config.sensor or socket.gethostname()
        self.reload = reload  # () -> Config, for SIGHUP
        self.ready = ready  # called once capture is open (sd_notify READY or a message to the parent)
        self.watchdog = watchdog  # send sd_notify WATCHDOG (the main process only; NotifyAccess=main)
        self.counters = Counters()
        self.stop = False
        self.hup = False
        self.paused = False
        self.store: Store | None = None
        self.capture: LiveCapture | None = None
        self.writer: RotatingWriter | None = None
        self.metering: Metering | None = None  # the meter's process: all but capture and the files
        self.stats_at_open: CaptureStats | None = None
        self.last_stats = CaptureStats(0, 0, 0)

    # -- set-up

    def _signals(self) -> None:
        def on_stop(signum, frame):
            self.stop = True

        def on_hup(signum, frame):
            self.hup = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_hup)

    def _limits(self) -> Limits:
        c = self.config
        return Limits(retain_bytes=c.retain_bytes, min_free_percent=c.min_free_percent, retain_days=c.retain_days)

    def repair_leftovers(self) -> None:
        """Seal the files a crash left under their temporary name (truncated to the last whole packet)."""
        out = self.config.output_dir
        prefix = self.spec.prefix(self.sensor) + "-"
        for part in sorted(out.glob(f"{glob_escape(prefix)}*.pcap{AGE_SUFFIX}{PART}")):  # encrypted: no key here
            sealed = seal_encrypted_leftover(part, file_sha256(part))
            row = self.store.capture_by_path(str(sealed.path))
            self._record_seal(sealed, capture_id=row["id"] if row and row.get("sealed_at") is None else None,
                              repaired=True)
            self.counters.repaired += 1
            log.warning("%s: left unsealed by an unclean stop; sealed as it stands (encrypted: the sensor cannot "
                        "repair it; decrypting it gives its whole 64 KiB chunks, then an error)", sealed.path)
        for part in sorted(out.glob(f"{glob_escape(prefix)}*.pcap{PART}")):
            final = part.with_name(part.name[: -len(PART)])
            scan = repair_pcap(part)
            os.replace(part, final)
            sealed = SealedFile(path=final, capture_id=None, size=scan.good_size, packets=scan.packets,
                                first_ts_ns=scan.first_ts_ns, last_ts_ns=scan.last_ts_ns, sha256=file_sha256(final),
                                opened_at=0.0, sealed_at_ns=time.time_ns())
            row = self.store.capture_by_path(str(final))
            self._record_seal(sealed, capture_id=row["id"] if row and row.get("sealed_at") is None else None,
                              repaired=True)
            self.counters.repaired += 1
            damaged = f"; {describe(list(scan.skipped))} and taken out" if scan.skipped else ""
            log.warning("%s: left unsealed by an unclean stop; repaired (%d whole packets kept, %d bytes cut%s) "
                        "and sealed", final, scan.packets, scan.size - scan.good_size, damaged)
            StreamIndex(self.store).index_repaired(final)

    def _on_open(self, path: Path) -> int:
        # runs in the writer thread: it uses the counters the loop last read, never the handle
        self.stats_at_open = self.last_stats
        return self.store.add_capture(path=str(path), format="pcap", link_types=str(self.capture.linktype),
                                      origin="recorder", interface=self.spec.name, sensor=self.sensor)

    def _on_seal(self, sealed: SealedFile) -> None:
        self._record_seal(sealed, capture_id=sealed.capture_id, repaired=sealed.damaged)
        if sealed.damaged:  # encrypt_to: its stream was cut
            log.error("%s: no space left to finish this encrypted file; sealed as it stands (decrypting it gives "
                      "its whole 64 KiB chunks; the packets after them are lost)", sealed.path)
        self.counters.files_sealed += 1
        self._retention()

    def _record_seal(self, sealed: SealedFile, *, capture_id: int | None, repaired: bool) -> None:
        before = self.stats_at_open or self.last_stats
        kernel = max(0, self.last_stats.dropped - before.dropped) if not repaired else None
        iface = max(0, self.last_stats.if_dropped - before.if_dropped) if not repaired else None
        prev = self.store.last_chain(self.sensor, self.spec.name) or GENESIS
        chain = chain_hash(prev, name=sealed.path.name, sha256=sealed.sha256, packets=sealed.packets,
                           size=sealed.size, first_ts_ns=sealed.first_ts_ns, last_ts_ns=sealed.last_ts_ns)
        fields = dict(sha256=sealed.sha256, packets=sealed.packets, bytes=sealed.size,
                      first_ts_ns=sealed.first_ts_ns, last_ts_ns=sealed.last_ts_ns, sealed_at=sealed.sealed_at_ns,
                      kernel_drops=kernel, iface_drops=iface, repaired=repaired, prev_chain=prev, chain=chain)
        if capture_id is None:
            self.store.add_capture(path=str(sealed.path), format="pcap", link_types="", origin="recorder",
                                   interface=self.spec.name, sensor=self.sensor, **fields)
        else:
            self.store.update_capture(capture_id, **fields)
        self.stats_at_open = self.last_stats

    def _on_delete(self, path: Path, reason: str) -> None:
        self.counters.files_deleted += 1
        log.info("%s: deleted (%s)", path, reason)
        row = self.store.capture_by_path(str(path))
        if row is not None:
            self.store.update_capture(row["id"], deleted_at=time.time_ns(), deleted_reason=reason)

    def _refresh_stats(self) -> None:
        if self.capture is not None:
            try:
                self.last_stats = self.capture.stats()
            except Exception:  # noqa: BLE001 - stats are best effort; capture goes on
                pass

    # -- the loop

    def run(self) -> None:
        c = self.config
        self._signals()
        c.output_dir.mkdir(parents=True, exist_ok=True)
        # encrypt_to: credential secrets written encrypted, with a fingerprint key kept on the sensor
        self.store = Store(c.db, file_mode=GROUP_READ, secrets=sealer_for(recipient_or_none(c.encrypt_to), c.output_dir))
        self.store.ensure_schema()
        self.repair_leftovers()
        # The capture first: if it cannot open, nothing else has started.
        self.capture = LiveCapture(self.spec.interface, snaplen=c.snaplen, promisc=c.promisc, bpf=c.bpf,
                                   buffer_size=c.buffer_size, fanout_group=self.spec.fanout_group)
        try:
            # forked before this process starts a thread (the writer's, live detection's)
            self.metering = Metering(c, self.store, self.stream_name, self.sensor, inspect=self.inspect,
                                     behind=self.behind, slot=self.slot, capture_fd=self.capture.fileno())
            self.writer = RotatingWriter(c.output_dir, self.spec.prefix(self.sensor), linktype=self.capture.linktype,
                                         snaplen=c.snaplen, rotate_size=c.rotate_size,
                                         rotate_interval=c.rotate_interval, on_open=self._on_open,
                                         on_seal=self._on_seal, recipient=recipient_or_none(c.encrypt_to))
            log.info("capturing on %s (link type %d) into %s", self.spec.name, self.capture.linktype, c.output_dir)
            if self.ready:
                self.ready()
            self._loop()
        finally:
            self._shutdown()

    def _loop(self) -> None:
        """Read and write, with the file write of one batch (in the writer thread: mostly the
        kernel copying into the page cache, the GIL released) overlapping the next read. A batch
        goes to the meter's process once its write has finished, with the files it landed in."""
        c = self.config
        now = time.monotonic()
        next_stats = now + c.stats_interval if c.stats_interval else None
        next_retention = now
        flush_every = flush_seconds(c, FLOW_FLUSH_SECONDS)  # sooner with live detection (recorder.live_flows)
        next_flush = now + flush_every
        next_watchdog = now
        next_pause_check = 0.0
        sealed_seen = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pcap-writer") as pool:
            pending = None  # (batch, future of its write)
            while not self.stop:
                raw = self.capture.read(READ_BATCH)
                now = time.monotonic()
                self._pace(raw)
                if raw is not None:
                    self.counters.packets += len(raw)
                    self.counters.bytes += int(raw.caplen.sum())
                    if self.paused and now < next_pause_check:
                        self.counters.paused_dropped += len(raw)
                        raw = None
                    else:
                        next_pause_check = now + PAUSE_CHECK_SECONDS
                done = self._finish_write(pending)  # the writer is idle from here until submit
                pending = None
                self._refresh_stats()
                if self.hup:
                    self.hup = False
                    self._reload()
                self.writer.tick()
                if now >= next_retention:
                    self._retention()
                    next_retention = now + RETENTION_EVERY_SECONDS
                if raw is not None:
                    pending = (raw, pool.submit(self._write, raw))
                self._meter(done)
                if self.writer.files_sealed != sealed_seen:  # interim records of the open connections
                    sealed_seen = self.writer.files_sealed
                    self.metering.interim()
                if now >= next_flush:
                    self.metering.flush(time.time_ns() if raw is None else None)  # idle: the clock moves on
                    next_flush = now + flush_every
                if now >= next_watchdog:
                    if self.watchdog:
                        sd_notify("WATCHDOG=1")
                    next_watchdog = now + 5.0
                if next_stats is not None and now >= next_stats:
                    self._stats_line()
                    next_stats = now + self.config.stats_interval
            self._meter(self._finish_write(pending))
        # Stopping: what the kernel already holds was captured; write it before sealing.
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and (raw := self.capture.read(READ_BATCH)) is not None:
            self.counters.packets += len(raw)
            self.counters.bytes += int(raw.caplen.sum())
            self._meter((raw, self._write(raw)))

    def _pace(self, raw) -> None:
        """How long this read's last packet waited in the kernel ring (the stats line's capture
        lag; the meter's process sheds inspection on its own backlog, ``recorder.lag``)."""
        last = int(raw.ts[-1]) if raw is not None else None
        self.lag.update(last, time.time_ns())

    @property
    def stream_name(self) -> str:
        return f"{self.sensor}/{self.spec.name}"

    @staticmethod
    def _finish_write(pending):
        """Wait for a submitted write; (batch, segments or None) -- None: it was not written."""
        if pending is None:
            return None
        raw, future = pending
        return raw, future.result()

    def _meter(self, done) -> None:
        """A written batch to the meter's process (not one that could not be written)."""
        if done is not None and done[1] is not None:
            self.metering.batch(*done)

    def _write(self, raw) -> list | None:
        """Write a batch into the files; on a full disk free space or pause. Returns the segments
        written, or None when the batch could not be written (counted as paused drops)."""
        try:
            segments = self.writer.write(raw)
        except DiskFull:
            freed = enforce(self.config.output_dir, self._limits(), now=time.time(),
                            need_bytes=int(raw.caplen.sum()) + 16 * len(raw) + (1 << 20), on_delete=self._on_delete)
            try:
                segments = self.writer.write(raw) if freed else None
            except DiskFull:
                segments = None
            if segments is None:
                if not self.paused:
                    log.error("%s: no space left and no sealed capture left to delete; capture paused "
                              "(packets counted as dropped) until space returns", self.config.output_dir)
                self.paused = True
                self.counters.paused_dropped += len(raw)
                return None
        if self.paused:
            self.paused = False
            log.warning("%s: space available again; capture resumed (%d packets dropped while paused)",
                        self.config.output_dir, self.counters.paused_dropped)
        return segments

    def _retention(self) -> None:
        try:
            enforce(self.config.output_dir, self._limits(), now=time.time(), on_delete=self._on_delete)
        except OSError as err:
            log.error("%s: retention failed: %s", self.config.output_dir, err.strerror or err)

    def _reload(self) -> None:
        if self.reload is None:
            return
        try:
            new = self.reload()
        except WiretrailError as err:
            log.error("SIGHUP: configuration not reloaded: %s", err)
            return
        keep = ("interface", "bpf", "snaplen", "promisc", "output_dir", "db", "workers", "sensor", "buffer_size",
                "local_net", "parsers", "encrypt_to", *LIVE_SETTINGS)
        changed = [k for k in keep if getattr(new, k) != getattr(self.config, k)]
        if changed:
            log.warning("SIGHUP: %s changed; that takes a restart (the rest is applied now)", ", ".join(changed))
            new = replace(new, **{k: getattr(self.config, k) for k in keep})
        self.config = new
        self.writer.rotate_size = new.rotate_size
        self.writer.rotate_interval = new.rotate_interval
        self.writer._boundary = None
        self.writer.seal()
        log.info("SIGHUP: configuration reloaded, file rotated")

    def _stats_line(self) -> None:
        self._refresh_stats()
        s, k, m = self.last_stats, self.counters, self.metering.stats()
        used = sum(p.stat().st_size for p in self.config.output_dir.glob("*.pcap*") if p.is_file())
        log.info("stats %s: packets %d, kernel drops %d, interface drops %d, paused drops %d, flows %d "
                 "(%d open), written %d bytes, files sealed %d, deleted %d, disk used %d bytes, "
                 "not parsed %d packets (%d shed in %d spells the meter was behind; capture lag %d ms, at most %d ms; "
                 "meter lag %d ms, at most %d ms, %d bytes waiting)",
                 self.spec.name, k.packets, s.dropped, s.if_dropped, k.paused_dropped, m.flows,
                 m.open_connections, self.writer.bytes_written, k.files_sealed, k.files_deleted, used,
                 m.parser_skipped, m.shed, m.spells, self.lag.lag_ns // 1_000_000, self.lag.max_lag_ns // 1_000_000,
                 m.lag_ns // 1_000_000, m.max_lag_ns // 1_000_000, self.metering.queued_bytes)

    def _shutdown(self) -> None:
        """Seal the last file first (the evidence), then let the meter finish what it holds."""
        self._refresh_stats()
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as err:
                log.error("cannot seal the last file: %s", err.strerror or err)
        if self.metering is not None:
            m = self.metering.close()
            log.info("stopped %s: %d packets, %d kernel drops, %d paused drops, %d flows, %d files sealed, "
                     "%d packets not parsed (%d shed in %d spells the meter was behind, capture lag at most %d ms, "
                     "meter lag at most %d ms)",
                     self.spec.name, self.counters.packets, self.last_stats.dropped,
                     self.counters.paused_dropped, m.flows, self.counters.files_sealed,
                     m.parser_skipped, m.shed, m.spells, self.lag.max_lag_ns // 1_000_000, m.max_lag_ns // 1_000_000)
        if self.capture is not None:
            self.capture.close()
        if self.store is not None:
            self.store.close()


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
