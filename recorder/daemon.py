"""The recorder daemon's supervisor: one capture stream per interface (or per PACKET_FANOUT worker)
and live detection beside them, until SIGTERM.

A stream (``recorder.stream.Stream``) runs in the main process when there is only one, else each
in a process of its own, forked after the schema exists; the supervisor relays their readiness
and errors, sends systemd READY once all capture, and stops them all when one fails. A stream's
process captures and writes; its meter's process (``recorder.metering``) meters, and sends flows
to the database and packets to the protocol parsers' process (``recorder.sinks``). So a ``wiretrail ingest`` of the sealed files gives the flows the daemon
stored, and the protocol records (dns, http, ssl, files, credentials...) unless the parsers fell
behind.

Signals: SIGTERM/SIGINT stop (flush and seal everything); SIGHUP re-reads the configuration and
rotates (one stream only; with several, a restart applies it). A database failure never stops
capture: flows wait in a bounded backlog and are retried; the pcap files are the evidence and can
be re-ingested.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time

from recorder.core.config import Config
from recorder.core.errors import CaptureError, WiretrailError
from recorder.core.secure_files import GROUP_READ
from recorder.core.store import Store
from recorder.lag import Behind
from recorder.live_signatures import signature_inspector
from recorder.sdnotify import sd_notify
from recorder.stream import Stream, StreamSpec

log = logging.getLogger("wiretrail-recorder")


def stream_specs(config: Config) -> list[StreamSpec]:
    specs = []
    for i, iface in enumerate(config.interface):
        if config.workers == 1:
            specs.append(StreamSpec(iface, None, None))
        else:
            group = (os.getpid() + i) & 0xFFFF
            specs.extend(StreamSpec(iface, w, group) for w in range(config.workers))
    return specs


def _child(config: Config, spec: StreamSpec, conn, inspect=None, behind: Behind | None = None, slot: int = 0) -> None:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        Stream(config, spec, ready=lambda: conn.send(("ready", spec.name)), inspect=inspect, behind=behind,
               slot=slot).run()
    except WiretrailError as err:
        conn.send(("error", str(err)))
        os._exit(err.exit_code)
    except Exception as err:  # noqa: BLE001 - one line to the parent, then a non-zero exit
        conn.send(("error", f"{spec.name}: {type(err).__name__}: {err}"))
        os._exit(1)
    os._exit(0)


def run(config: Config, *, reload=None, detectors: list | None = None) -> int:
    """Run the recorder until SIGTERM; returns the exit code. ``detectors``: the live detection
    plug-ins (``recorder.core.detection.load_detectors``), run in a thread of this process."""
    from recorder.detect import LiveDetection

    specs = stream_specs(config)
    behind = Behind(len(specs))  # shared with the streams' processes: the catch-up waits while one lags
    live = LiveDetection(config, detectors or [], config.sensor or socket.gethostname(), capture_behind=behind.any)
    inspect = signature_inspector(detectors or [], config)
    if len(specs) == 1:
        def ready():
            live.start()  # once capture and the parsers' process run (no thread across their fork)
            sd_notify("READY=1")
        try:
            Stream(config, specs[0], reload=reload, ready=ready, watchdog=True, inspect=inspect,
                   behind=behind).run()
        finally:
            live.stop()
        sd_notify("STOPPING=1")
        return 0
    try:
        return _run_streams(config, specs, live, inspect, behind)
    finally:
        live.stop()


def _run_streams(config: Config, specs: list[StreamSpec], live, inspect=None, behind: Behind | None = None) -> int:
    # Several streams: one process each. Schema first, so they do not race to create it.
    with Store(config.db, file_mode=GROUP_READ) as store:
        store.ensure_schema()
    ctx = multiprocessing.get_context("fork")
    children = []
    for slot, spec in enumerate(specs):
        parent_end, child_end = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_child, args=(config, spec, child_end, inspect, behind, slot),
                        name=f"wiretrail-{spec.name}")
        p.start()
        child_end.close()
        children.append((spec, p, parent_end))
    stop = False

    def on_signal(signum, frame):
        nonlocal stop
        stop = True
        for _, p, _ in children:
            if p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    def on_hup(signum, frame):
        log.warning("SIGHUP: with several capture processes, restart the service to apply a new configuration")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    ready: set[str] = set()
    code = 0
    while any(p.is_alive() for _, p, _ in children):
        for _spec, p, conn in children:
            while conn.poll():
                try:
                    kind, value = conn.recv()
                except EOFError:
                    break
                if kind == "ready":
                    ready.add(value)
                    if len(ready) == len(children):
                        live.start()
                        sd_notify("READY=1")
                elif kind == "error":
                    log.error("%s", value)
            if not p.is_alive() and p.exitcode not in (0, None) and not stop:
                code = p.exitcode
                on_signal(signal.SIGTERM, None)
        if len(ready) == len(children) and not stop:
            sd_notify("WATCHDOG=1")
        time.sleep(0.5)
    for _, p, _ in children:
        p.join()
        if p.exitcode not in (0, None):
            code = code or p.exitcode
    sd_notify("STOPPING=1")
    if code:
        raise CaptureError(f"a capture process exited with status {code}")
    return 0
