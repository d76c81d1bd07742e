"""The recorder's packet index (``recorder.core.flow.packetindex``): collected in the meter's
process as batches are metered, each finished file's entries sorted, encoded and stored by a
thread of its own, one file after another, while capture goes on; a file a crash left unindexed
indexed from the file at start; and the index's own CPU time, logged as the recorder stops."""

from __future__ import annotations

import logging
import resource
import threading
import time
from pathlib import Path

from recorder.core.decode.decode import Decoder
from recorder.core.errors import StoreError, WiretrailError
from recorder.core.flow.packetindex import FileIndexes, IndexBuilder, PendingIndex

log = logging.getLogger("wiretrail-recorder")


class StreamIndex:
    """The packet index of one capture stream's files, stored through ``store``."""

    def __init__(self, store) -> None:
        self.store = store
        self.files = FileIndexes(self._save)
        self.thread: threading.Thread | None = None  # the last file's index being stored
        self.save_cpu_ns = 0  # CPU time of those threads (encoding and storing)

    def add(self, raw, dec, capture_id: int | None) -> None:
        self.files.add(raw, dec, capture_id)

    def close(self) -> None:
        """The last file's index stored (waits for it)."""
        self.files.close()
        if self.thread is not None:
            self.thread.join()

    def _save(self, pending: PendingIndex) -> None:
        before = self.thread

        def save() -> None:
            if before is not None:
                before.join()
            t0 = time.thread_time_ns()
            try:
                self.store.add_packet_index(pending.capture_id, pending.builder.entries())
            except StoreError as err:
                log.error("packet index of capture %d not written: %s", pending.capture_id, err.message)
            self.save_cpu_ns += time.thread_time_ns() - t0

        self.thread = threading.Thread(target=save, name="packet-index")
        self.thread.start()

    def index_repaired(self, path: Path) -> None:
        """The index of a file a crash left unindexed or partly indexed (the meter's process, left
        alone by a killed capture process, stores what it had collected): read once more and
        indexed as ``wiretrail ingest`` indexes a file, so ``extract`` finds the packets of the
        flows stored before the crash in it too."""
        from recorder.core.capio.pcapio import read_batches

        row = self.store.capture_by_path(str(path))
        if row is None:
            return
        builder, decoder = IndexBuilder(), Decoder(fast=True)
        try:
            for raw in read_batches(path, on_warning=lambda w: None):
                builder.add(raw, decoder.decode(raw))
            self.store.add_packet_index(row["id"], builder.entries(), replace=True)
        except (WiretrailError, OSError) as err:
            log.error("%s: repaired file not indexed (extract will not find its packets): %s", path,
                      getattr(err, "message", None) or err)
            return
        log.info("%s: indexed after the repair (%d packets)", path, builder.packets)

    def log_cost(self, name: str) -> None:
        """One line: the CPU time the index took in this process (collecting, timed in the meter's
        thread; sorting, encoding and storing, timed in its own) against the process's whole."""
        use = resource.getrusage(resource.RUSAGE_SELF)
        total = use.ru_utime + use.ru_stime
        spent = (self.files.cpu_ns + self.save_cpu_ns) / 1e9
        if total > 0 and spent > 0:
            log.info("packet index %s: %.2f s of CPU, %.1f%% of this meter process's %.2f s",
                     name, spent, 100 * spent / total, total)
