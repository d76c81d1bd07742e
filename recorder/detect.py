"""Live detection: the detection plug-ins run over the store's recent records, in a thread.

Every ``detect_interval`` each detector (``recorder.core.detection``) evaluates the records of the
last ``detect_window``; the alerts it returns (new findings only) are stored in the ``alerts``
table, logged one line each (journald), and queued for the notifier. The thread has its own
database connection; capture and the flow writer never wait on it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from recorder.core.config import Config
from recorder.core.secure_files import GROUP_READ
from recorder.core.store import Store
from recorder.notify import Notifier, severity_name

log = logging.getLogger("wiretrail-recorder")
NS = 1_000_000_000


def alert_line(row: dict) -> str:
    """The journald line of one alert."""
    where = f"{row['src_ip']} -> {row['dest_ip']}" + (f":{row['dest_port']}" if row.get("dest_port") else "")
    return (f"ALERT {severity_name(row['severity'])} [{row['kind']} {row['signature_id']}] "
            f"{row['signature']} ({where})")


class LiveDetection:
    """The detection thread and the notifier it feeds."""

    def __init__(self, config: Config, detectors: list, sensor: str, *,
                 clock: Callable[[], float] = time.time, capture_behind: Callable[[], bool] | None = None) -> None:
        self.config, self.detectors, self.clock = config, detectors, clock
        for det in detectors:  # the catch-up waits while capture lags (recorder.lag)
            if hasattr(det, "capture_behind"):
                det.capture_behind = capture_behind
        self.store = Store(config.db, file_mode=GROUP_READ)
        self.notifier = Notifier(config, self.store, sensor, clock=clock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="live-detection", daemon=True)
        self.rounds = 0
        self.alerts = 0
        self.last_seconds = 0.0

    def start(self) -> None:
        self.store.ensure_schema()
        self.notifier.start()
        if not self.detectors and self.config.detect_interval:
            log.warning("live detection off: no detection plug-in is installed (entry-point group "
                        "wiretrail.detectors; re-install the wiretrail package)")
        if self.detectors and self.config.detect_interval:
            self._thread.start()
            log.info("live detection: %s every %ds over the last %ds",
                     ", ".join(f"{d.rules} {d.name} rules" for d in self.detectors),
                     self.config.detect_interval, self.config.detect_window)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
        for det in self.detectors:
            close = getattr(det, "close", None)
            if close is not None:
                close()
        self.notifier.stop()
        self.store.close()

    def _serve(self) -> None:
        next_stats = time.monotonic() + self.config.stats_interval if self.config.stats_interval else None
        while not self._stop.wait(self.config.detect_interval):
            try:
                self.run_once()
            except Exception as err:  # noqa: BLE001 - the database may be busy: next round
                log.warning("live detection: %s: %s", type(err).__name__, str(err).splitlines()[0] if str(err) else "")
            if next_stats is not None and time.monotonic() >= next_stats:
                next_stats = time.monotonic() + self.config.stats_interval
                files = "".join(f", {d.name}s: packets inspected live {d.live_packets}, by catch-up {d.packets} "
                                f"({d.files_caught_up} files, the last {d.delay_s:.1f} s after its last packet), "
                                f"deferred {d.deferred} times while capture was behind"
                                for d in self.detectors if hasattr(d, "live_packets"))
                log.info("stats live detection: rounds %d, new alerts %d, last round %.2f s, messages sent %d%s",
                         self.rounds, self.alerts, self.last_seconds, self.notifier.sent, files)

    def run_once(self) -> int:
        """One round over the window ending now; returns how many alerts were new."""
        start = self.clock()
        since_ns = int(start * NS) - self.config.detect_window * NS
        new = 0
        for det in self.detectors:
            rows = det.evaluate(self.store, since_ns)
            if not rows:
                continue
            fresh: list[dict] = []
            if getattr(det, "stores", False):  # stored by the detector itself: these are the new ones
                fresh = rows
                new += len(rows)
            else:
                new += self.store.add_alerts(rows, new_rows=fresh)  # an alert seen again adds none
            for row in fresh:
                log.warning("%s", alert_line(row))
            self.notifier.submit(fresh)
        self.rounds += 1
        self.alerts += new
        self.last_seconds = self.clock() - start
        return new
