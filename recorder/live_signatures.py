"""Live signatures: the signature engine in the recorder's protocol parsers' process, on every
batch as it passes, with the parsers' messages (the same ``ingest(..., inspector=)`` path as
``wiretrail replay``).

The recorder does not import the engine (it lives in ``analysis``): the signature detection
plug-in (``recorder.core.detection``, entry point ``signature``) offers ``inspector()``, which
returns an inspector (``recorder.core.apps.inspection``) with one more method, ``take() -> list
of alert rows`` (``Store.add_alerts``; what it found since the last call). ``LiveSignatures``
wraps it: created in the capture process, it runs in the parsers' process (``app_process(...,
inspector=)``; a parsers' process started again after a failure starts with a fresh engine) and
there

- stores the alerts of each batch at once, each tagged with the capture file of its batch, logs
  one journald line per new alert and queues it for the notifications (``Notifier.submit``; the
  notifier's thread in the main process sends them);
- notes in ``captures.inspected_live`` how many of a file's packets it inspected so far, at each
  flush of the recorder and when the file is over for it (the next file's first batch reaches it,
  or the recorder stops). A sealed file whose count is still short of its packets a few seconds
  later (batches the parsers skipped while behind, or a parsers' process that failed) or that has
  no count a minute later is inspected again from the file by the catch-up
  (``analysis.live.SealedSignatures``), whose result then stands for that file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from recorder.core.errors import StoreError

log = logging.getLogger("wiretrail-recorder")
MAX_PENDING_ALERTS = 100_000  # alerts kept for a later try while the database refuses them


def signature_inspector(detectors: list, config) -> Callable | None:
    """The live inspector factory of the first detection plug-in that has one (``inspector()``);
    None when live detection is off (``detect_interval = 0``)."""
    if not config.detect_interval:
        return None
    return next((d.inspector for d in detectors if callable(getattr(d, "inspector", None))), None)


class LiveSignatures:
    """The plug-in's inspector in the parsers' process, its alerts stored and queued (see above)."""

    def __init__(self, make: Callable, config, sensor: str, store) -> None:
        self.make, self.config, self.sensor, self.store = make, config, sensor, store
        self.inner = None  # made in the parsers' process, at its first batch
        self.notifier = None
        self.capture_id: int | None = None
        self.inspected = 0  # packets of the current capture file inspected here
        self.pending: list[dict] = []  # alerts the database refused, tried again with the next ones

    def _inner(self):
        if self.inner is None:
            from recorder.notify import Notifier

            self.inner = self.make()
            self.notifier = Notifier(self.config, self.store, self.sensor)  # its queue only: no thread here
        return self.inner

    def capture(self, capture_id: int | None) -> None:
        """The batches from now on are of this capture file: the one before is over."""
        self._note_count()
        self.capture_id, self.inspected = capture_id, 0

    def feed(self, raw, dec, messages: list, recognised: list) -> None:
        inner = self._inner()
        inner.feed(raw, dec, messages, recognised)
        self.inspected += len(raw)
        self._store(inner.take())

    def flush(self) -> None:
        """The recorder's periodic flush: the count so far of the current file (so a file sealed
        before an idle spell has its count without waiting for the next file)."""
        self._note_count()

    def finish(self, messages: list) -> None:
        inner = self._inner()
        inner.finish(messages)
        self._store(inner.take())
        self._note_count()

    def _note_count(self) -> None:
        if self.capture_id is None:
            return
        try:
            self.store.update_capture(self.capture_id, inspected_live=self.inspected)
        except StoreError as err:  # the catch-up then inspects the file (no count: after a while)
            log.error("live signatures: count of capture %d not stored: %s", self.capture_id, err.message)

    def _store(self, rows: list[dict]) -> None:
        for row in rows:
            row["capture_id"] = self.capture_id
        rows = self.pending + rows
        if not rows:
            return
        from recorder.detect import alert_line

        fresh: list[dict] = []
        try:
            self.store.add_alerts(rows, new_rows=fresh)
            self.notifier.submit(fresh)
        except StoreError as err:
            if not self.pending:
                log.error("live signatures: alerts not stored yet: %s; tried again with the next ones", err.message)
            self.pending = rows[-MAX_PENDING_ALERTS:]
            return
        self.pending = []
        for row in fresh:
            log.warning("%s", alert_line(row))


def live_signatures(make: Callable | None, config, sensor: str, store) -> LiveSignatures | None:
    """What ``LiveApps`` hands its parsers' process: None without a live inspector plug-in."""
    return LiveSignatures(make, config, sensor, store) if make is not None else None
